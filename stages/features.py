"""Stage features: electrophysiology features from raw recordings (ABF, NWB), for predict.

``python -m stages.features --input recordings/ --output mine.csv`` reads every ``.abf``
(pyABF) and ``.nwb`` (NWB 2, h5py) file under the inputs (folders searched recursively,
repeat ``--input`` for more) and writes one row per file: ``cell_id`` (the file name
without suffix), the project's features in its units (ephys2expr/features.py), and for each
feature ``<feature>_sweep`` (the sweeps it came from) and ``<feature>_qc`` (why it is NaN,
or a note); ``qc`` says what is wrong with the whole file. predict takes the table as it is:
``python -m stages.predict --input mine.csv --output mine.h5ad``.

The definitions are the Allen Cell Types (ipfx) ones (docs/features-from-recordings.md).
A truncated or corrupt file stops the run with one line naming it; nothing is written.
Settings: ``params.yaml`` section ``features`` (``--set n_jobs=1``, ``--set filter_khz=5``).
The DVC stage ``features@<name>`` runs this on each folder of ``prepare.recordings``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ephys2expr.cli import friendly_errors, params_option, run_stage, set_option, stage_app
from ephys2expr.errors import InputError
from ephys2expr.io import write_csv, write_parquet
from ephys2expr.recordings.run import extract_features
from ephys2expr.recordings.settings import FeaturesSettings

app = stage_app(__doc__)


@app.command()
@friendly_errors
def main(
    params: Path = params_option(),
    overrides: list[str] = set_option(FeaturesSettings),
    input: list[Path] = typer.Option(  # noqa: A002 - the documented option name
        ..., "--input", help="a recording (.abf, .nwb) or a folder of them; repeat for more"
    ),
    output: Path = typer.Option(..., "--output", help="feature table (.csv or .parquet)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar"),
) -> None:
    """Extract the features of every recording under --input; write one table."""
    suffix = output.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InputError(f"{output}: the output must end in .csv or .parquet")
    settings = FeaturesSettings.from_params(params, overrides)
    table = extract_features(input, settings, progress=progress)
    (write_parquet if suffix == ".parquet" else write_csv)(table, output)


if __name__ == "__main__":
    run_stage(app)
