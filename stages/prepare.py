"""Stage prepare: raw data -> training tables, per-cell prediction tables, metrics, report.

``--source`` picks the training source (default ``params.yaml`` ``prepare.type_mean_source``);
the DVC pipeline runs it once for every source of ``prepare.sources`` (cell-type means,
Scala's Patch-seq cells, your own in ``prepare.paired``), each into ``data/prepared/<source>``.
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
    run_stage,
    set_option,
    stage_app,
)
from ephys2expr.io import write_json, write_parquet
from ephys2expr.prepare.run import prepare
from ephys2expr.prepare.settings import PrepareSettings
from ephys2expr.rounding import for_people

app = stage_app(__doc__)


@app.command()
@friendly_errors
def main(
    params: Path = params_option(),
    overrides: list[str] = set_option(PrepareSettings),
    source: str = typer.Option(
        "",
        "--source",
        help="training source to prepare: rds | online_table3 | scala2021 | a name defined in "
        "prepare.paired (default: params.yaml prepare.type_mean_source)",
    ),
    raw_dir: Path = dir_option("raw-dir", paths.RAW, "folder holding the raw data tree"),
    out_dir: Path = dir_option("out-dir", paths.PREPARED, "folder for the prepared tables"),
    metrics: Path = metrics_option(paths.METRICS / "prepare.json"),
    report: Path = report_option(paths.REPORTS / "prepare.json"),
) -> None:
    """Write tidy Parquet inputs for train and predict, the metrics and the report."""
    settings = PrepareSettings.from_params(params, overrides)
    prepared = prepare(raw_dir, settings, source or None)
    # Only now, with every input read and checked, is anything written.
    for name, table in prepared.tables().items():
        write_parquet(table, out_dir / name)
    write_json(prepared.metrics, metrics)
    write_json(for_people(prepared.report), report)  # for people: rounded


if __name__ == "__main__":
    run_stage(app)
