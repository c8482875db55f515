"""Stage predict: apply the model store to per-cell feature tables (Allen or your own).

Two ways to name the inputs:

* ``params.yaml`` ``cells.inputs`` (the DVC stage): ``<prepared-dir>/cells_<name>.parquet``
  -> ``<out-dir>/<name>.h5ad`` (+ ``.parquet`` with ``write_parquet``), with metrics,
  report and plots. The store holds a feature set for every missing pattern of these
  tables (train derives them from the same ``cells:`` section), so this trains nothing.
* ``--input FILE --output FILE.h5ad|.parquet`` (repeatable; outside DVC): any CSV/TSV/Parquet
  table with the model's feature columns and an id column (``--id-column``, default
  ``cell_id``).
  Without a ``params.yaml`` in the current folder the default settings apply.

Every output path is checked and every input read and checked before anything is written;
all outputs (predictions, genes tables, plots, metrics, report) are written to temporary
files and renamed into place together at the end, so a failed or interrupted run
(SIGTERM, Ctrl-C) leaves nothing, and temporary files of a killed run (SIGKILL) are
removed by the next run. Settings: ``params.yaml`` sections ``predict`` and ``executor``,
``cells`` and ``executor``, overridden with ``--set KEY=VALUE`` (``--set missing=impute``,
``--set cells.min_features=4``, ``--set executor.kind=local``). An ``--input`` table with a
missing pattern the store has no feature set for gets that set fitted on demand from the
store's training tables (:mod:`ephys2expr.train.on_demand`; cached in ``predict.cache_dir``;
``--set on_demand_null=0`` skips its null: no q-values). That module is imported by name for
``--input`` runs only, so predict's DVC deps (the pipeline run) hold no training code.
"""

from __future__ import annotations

import importlib
from functools import partial
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
from ephys2expr.io import save_figure, write_json
from ephys2expr.model.store import load_model_store
from ephys2expr.predict.jobs import prediction_jobs
from ephys2expr.predict.outputs.output_set import OutputSet
from ephys2expr.predict.plots import figure_names, prediction_figures
from ephys2expr.predict.run import predict_tables
from ephys2expr.predict.settings import PredictSettings
from ephys2expr.prepare.settings import PrepareSettings
from ephys2expr.rounding import for_people
from ephys2expr.settings import build_settings

app = stage_app(__doc__)

# Fits a set the store lacks: user tables (--input) only. Imported by name when needed, so the
# pipeline's run (which never fits: train made every set of cells.inputs) imports no train/
# code and its dvc.yaml deps list none (tests/test_dvc_deps.py, tests/test_predict.py).
ON_DEMAND = "ephys2expr.train.on_demand"


def on_demand_fit(settings: PredictSettings):
    """``fit_set`` for :func:`~ephys2expr.predict.run.predict_tables`: the store's training
    tables and settings, the null of ``predict.on_demand_null``, cached in ``cache_dir``."""
    fit = importlib.import_module(ON_DEMAND).fit_feature_set
    return partial(
        fit, n_permutations=settings.on_demand_permutations, cache_dir=settings.cache_dir
    )


@app.command()
@friendly_errors
def main(
    params: Path = params_option(),
    overrides: list[str] = set_option(PredictSettings, ExecutorSettings, CellSettings),
    model_dir: Path | None = dir_option(
        "model-dir", None, "model store [default: data/models/<prepare.type_mean_source>]"
    ),
    prepared_dir: Path = dir_option(
        "prepared-dir", paths.PREPARED, "where cells_<name>.parquet live"
    ),
    out_dir: Path = dir_option("out-dir", paths.PREDICTIONS, "where <name>.h5ad goes"),
    plots_dir: Path | None = dir_option("plots-dir", None, "folder for the plots (optional)"),
    metrics: Path | None = metrics_option(None),
    report: Path | None = report_option(None),
    input: list[Path] = typer.Option(  # noqa: A002 - the documented option name
        [], "--input", help="a feature table (CSV/TSV/Parquet); repeat for several"
    ),
    output: list[Path] = typer.Option(
        [], "--output", help="predictions file (.h5ad or .parquet) for each --input, in order"
    ),
    id_column: str = typer.Option("cell_id", "--id-column", help="id column of --input tables"),
    species: str | None = typer.Option(
        None, "--species", help="species of --input cells without a species column"
    ),
) -> None:
    """Predict log2 expression of every gene for every cell; write h5ad (and/or Parquet)."""
    settings, executor, cells = build_settings(
        params, overrides, PredictSettings, ExecutorSettings, CellSettings
    )
    jobs = prediction_jobs(settings, prepared_dir, out_dir, input, output, cells)
    if model_dir is None:  # the params' type-mean store, as the pipeline writes it
        model_dir = paths.model_store(PrepareSettings.from_params(params).type_mean_source)
    store = load_model_store(model_dir)
    read = [job.source for job in jobs] + ([params] if params.is_file() else [])
    files = [p for job in jobs for p in job.files().values()]
    figures = (
        [] if plots_dir is None else [plots_dir / n for job in jobs for n in figure_names(job.name)]
    )
    with OutputSet(read, [model_dir]) as outputs:
        outputs.plan(*files, metrics, report, *figures)
        if not input:  # the pipeline's folders (persisted by DVC) hold this run's outputs only
            outputs.own_folder(out_dir, files)
            if plots_dir is not None:
                outputs.own_folder(plots_dir, figures)
        result = predict_tables(
            jobs,
            store,
            settings,
            executor,
            id_column=id_column,
            species=species,
            where=str(model_dir),
            outputs=outputs,
            cells=cells,
            fit_set=on_demand_fit(settings) if input else None,
        )
        if plots_dir is not None:
            for plot in result.plots:
                for name, fig in prediction_figures(plot):
                    save_figure(fig, outputs.temp(plots_dir / name))
        if metrics is not None:
            write_json(result.metrics, outputs.temp(metrics))
        if report is not None:
            write_json(for_people(result.report), outputs.temp(report))  # rounded for people


if __name__ == "__main__":
    run_stage(app)
