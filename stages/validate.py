"""Stage validate: predicted expression against measured expression, in pictures and numbers.

Measured references: Tasic 2016 single cells (the 170-gene RData shipped here, or the full
GEO counts layout) and the Cadwell 2016 Patch-seq cells (held out from training; a model on
exactly the features Cadwell has, fitted with the settings the model store was trained with,
predicts each cell from its own ephys). With the ``--paired-*`` folders of a per-cell model
(Scala 2021) also the cross-source comparison of the two models on the same held-out cells.
The science is in :mod:`ephys2expr.validate`.

Reads ``<predictions-dir>/<validate.predictions>.parquet`` and
``<prepared-dir>/cells_<validate.predictions>.parquet``. Settings: ``params.yaml``
``validate``, overridden with ``--set KEY=VALUE``.
"""

from __future__ import annotations

from pathlib import Path

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
from ephys2expr.errors import InputError
from ephys2expr.io import save_figure, write_csv, write_json, write_parquet
from ephys2expr.rounding import for_people, round_table
from ephys2expr.validate.run import validate_predictions
from ephys2expr.validate.settings import ValidateSettings

app = stage_app(__doc__)


@app.command()
@friendly_errors
def main(
    params: Path = params_option(),
    overrides: list[str] = set_option(ValidateSettings),
    model_dir: Path = dir_option("model-dir", ..., "type-mean model store (data/models/<source>)"),
    prepared_dir: Path = dir_option(
        "prepared-dir", paths.PREPARED, "training tables and cells_<name>.parquet"
    ),
    predictions_dir: Path = dir_option(
        "predictions-dir", paths.PREDICTIONS, "where <name>.parquet (predictions) lives"
    ),
    raw_dir: Path = dir_option("raw-dir", paths.RAW, "raw data (Tasic, Cadwell, palette)"),
    paired_model_dir: Path | None = dir_option(
        "paired-model-dir", None, "per-cell model store: adds the cross-source comparison"
    ),
    paired_prepared_dir: Path | None = dir_option(
        "paired-prepared-dir", None, "per-cell model's training tables (with --paired-model-dir)"
    ),
    paired_train_dir: Path | None = dir_option(
        "paired-train-dir", None, "per-cell model's train output (oof_predictions.parquet)"
    ),
    out_dir: Path = dir_option("out-dir", paths.VALIDATION, "tables folder"),
    plots_dir: Path = dir_option("plots-dir", paths.PLOTS / "validate", "figures folder"),
    metrics: Path = metrics_option(paths.METRICS / "validate.json"),
    report: Path = report_option(paths.REPORTS / "validate.json"),
) -> None:
    """Embeddings (PNG), type agreement, label transfer, mixing and Patch-seq agreement."""
    settings = ValidateSettings.from_params(params, overrides)
    paired = (paired_model_dir, paired_prepared_dir, paired_train_dir)
    if any(d is None for d in paired) and any(d is not None for d in paired):
        raise InputError(
            "--paired-model-dir, --paired-prepared-dir and --paired-train-dir go together"
        )
    result = validate_predictions(
        settings,
        model_dir,
        prepared_dir,
        predictions_dir,
        raw_dir,
        paired if paired_model_dir is not None else None,
    )
    for name, table in result.tables.items():
        write_parquet(table, out_dir / f"{name}.parquet")
    for name, table in result.plot_tables.items():  # for people: rounded, as the report
        write_csv(round_table(table), plots_dir / f"{name}.csv", index=False)
    for name, fig in result.figures.items():
        save_figure(fig, plots_dir / f"{name}.png")
    write_json(for_people(result.report), report)
    write_json(result.metrics, metrics)


if __name__ == "__main__":
    run_stage(app)
