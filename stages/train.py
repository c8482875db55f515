"""Stage train: per-gene penalised regression, nested CV, baselines, null, model store.

Settings: ``params.yaml`` sections ``train`` and ``executor`` (override with
``--set key=value`` for train, ``--set executor.key=value`` for the executor), and ``cells``
(``inputs``, ``min_features``: the tables whose missing patterns the feature sets follow,
which predict applies the store to; predict's own settings are not read); with ``--source
NAME`` the keys of section ``train_NAME`` override ``train``'s for that source.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ephys2expr import paths
from ephys2expr.cell_inputs import CellSettings
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
from ephys2expr.executor import ExecutorSettings
from ephys2expr.io import save_figure, write_csv, write_json, write_parquet
from ephys2expr.model.store import check_store_destination, save_model_store
from ephys2expr.rounding import for_people, round_table
from ephys2expr.settings import build_settings
from ephys2expr.train.run import train_from_prepared
from ephys2expr.train.settings import TrainSettings
from ephys2expr.train.summary import headline_metrics

app = stage_app(__doc__)


@app.command()
@friendly_errors
def main(
    params: Path = params_option(),
    overrides: list[str] = set_option(TrainSettings, ExecutorSettings, CellSettings),
    source: str = typer.Option(
        "",
        "--source",
        help="training source (data/prepared/<source>): its params.yaml section "
        "train_<source> overrides train's keys (default: none, train's only)",
    ),
    stream_targets: bool = typer.Option(
        False,
        "--stream-targets/--no-stream-targets",
        help="read targets a gene chunk at a time (executor.gene_chunk; bounded memory for "
        "large paired sets); out-of-fold predictions are then kept only for the plotted genes",
    ),
    prepared_dir: Path = dir_option("prepared-dir", paths.PREPARED, "prepare's tables"),
    model_dir: Path = dir_option(
        "model-dir", ..., "model store output folder (data/models/<source>)"
    ),
    out_dir: Path = dir_option("out-dir", paths.DATA / "train", "per-gene tables output folder"),
    plots_dir: Path = dir_option("plots-dir", paths.PLOTS / "train", "plots output folder"),
    metrics: Path = metrics_option(paths.METRICS / "train.json"),
    report: Path = report_option(paths.REPORTS / "train.json"),
) -> None:
    """Fit every gene, evaluate honestly, write the model store, tables, metrics and plots."""
    settings, executor, cells = build_settings(
        params, overrides, TrainSettings, ExecutorSettings, CellSettings, source=source
    )
    check_store_destination(model_dir)
    # the feature sets follow the missing patterns of the tables predict applies the store to
    out = train_from_prepared(
        prepared_dir,
        settings,
        executor,
        stream_targets=stream_targets,
        source=source,
        cell_inputs=cells.inputs,
        min_features=cells.min_features,
    )
    save_model_store(out.store, model_dir)
    write_parquet(out.per_gene, out_dir / "per_gene.parquet")
    write_parquet(out.oof, out_dir / "oof_predictions.parquet")
    write_csv(round_table(out.plot_table()), plots_dir / "per_gene.csv")
    write_csv(round_table(out.feature_sets), plots_dir / "feature_sets.csv")
    for name, figure in out.figures().items():
        save_figure(figure, plots_dir / f"{name}.png")
    # for people: rounded (the same on every machine); the metrics are the written report's
    written = for_people(out.report)
    write_json(headline_metrics(written), metrics)
    write_json(written, report)


if __name__ == "__main__":
    run_stage(app)
