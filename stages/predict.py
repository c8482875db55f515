"""Stage predict: apply the model store to per-cell feature tables (Allen or your own).

Two ways to name the inputs:

* ``params.yaml`` ``predict.inputs`` (the DVC stage): ``<prepared-dir>/cells_<name>.parquet``
  -> ``<out-dir>/<name>.parquet`` (+ ``.h5ad``), with metrics, report and plots.
* ``--input FILE --output FILE.parquet`` (repeatable; outside DVC): any CSV/TSV/Parquet table
  with the model's feature columns and an id column (``--id-column``, default ``cell_id``).
  Without a ``params.yaml`` in the current folder the default settings apply.

Every input is read and checked before anything is written. Settings: ``params.yaml``
sections ``predict`` and ``executor``, overridden with ``--set KEY=VALUE``
(``--set missing=impute``, ``--set executor.kind=local``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from ephys2expr import paths
from ephys2expr.cli import (
    dir_option,
    friendly_errors,
    metrics_option,
    params_option,
    report_option,
    set_option,
)
from ephys2expr.executor import ExecutorSettings
from ephys2expr.io import save_figure, write_json
from ephys2expr.model.store import load_model_store
from ephys2expr.predict.plots import prediction_figures
from ephys2expr.predict.run import predict_tables, prediction_jobs
from ephys2expr.predict.settings import PredictSettings
from ephys2expr.settings import build_settings

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
@friendly_errors
def main(
    params: Path = params_option(),
    overrides: list[str] = set_option(PredictSettings),
    model_dir: Path = dir_option("model-dir", paths.MODEL, "model store directory"),
    prepared_dir: Path = dir_option(
        "prepared-dir", paths.PREPARED, "where cells_<name>.parquet live"
    ),
    out_dir: Path = dir_option("out-dir", paths.PREDICTIONS, "where <name>.parquet goes"),
    plots_dir: Path | None = dir_option("plots-dir", None, "folder for the plots (optional)"),
    metrics: Path | None = metrics_option(None),
    report: Path | None = report_option(None),
    input: list[Path] = typer.Option(  # noqa: A002 - the documented option name
        [], "--input", help="a feature table (CSV/TSV/Parquet); repeat for several"
    ),
    output: list[Path] = typer.Option(
        [], "--output", help="predictions Parquet for each --input, in the same order"
    ),
    id_column: str = typer.Option("cell_id", "--id-column", help="id column of --input tables"),
    species: str | None = typer.Option(
        None, "--species", help="species of --input cells without a species column"
    ),
) -> None:
    """Predict log2 expression of every gene for every cell; write Parquet (+ h5ad)."""
    settings, executor = build_settings(params, overrides, PredictSettings, ExecutorSettings)
    jobs = prediction_jobs(settings, prepared_dir, out_dir, input, output)
    store = load_model_store(model_dir)
    result = predict_tables(
        jobs, store, settings, executor, id_column=id_column, species=species,
        where=str(model_dir),
    )  # fmt: skip
    if plots_dir is not None:
        for plot in result.plots:
            for name, fig in prediction_figures(plot):
                save_figure(fig, plots_dir / name)
    if metrics is not None:
        write_json(result.metrics, metrics)
    if report is not None:
        write_json(result.report, report)


if __name__ == "__main__":
    app()
