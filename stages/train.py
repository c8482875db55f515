"""Stage train: per-gene penalised regression, nested CV, baselines, null, model store."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from ephys2expr import __version__, paths
from ephys2expr.cli import friendly_errors
from ephys2expr.evaluation import (
    BASELINES,
    TrainSettings,
    load_training_inputs,
    train_and_evaluate,
)
from ephys2expr.executor import ExecutorSettings, open_executor
from ephys2expr.io import file_checksum, write_csv, write_json, write_parquet
from ephys2expr.model_store import ModelStore, save_model_store
from ephys2expr.train_plots import plotted_genes, write_train_plots

app = typer.Typer(add_completion=False, help=__doc__)
log = logging.getLogger("ephys2expr.train")


@app.command()
@friendly_errors
def main(
    penalty: str = typer.Option("lasso", help="lasso | elasticnet | ridge"),
    l1_ratio: float = typer.Option(0.5, help="elastic-net mixing (elasticnet only)"),
    alpha: str = typer.Option("auto", help="a number, or 'auto' (inner CV per gene)"),
    n_alphas: int = typer.Option(30, help="length of the alpha path for 'auto'"),
    alpha_min: float = typer.Option(1e-3, help="smallest alpha of the path"),
    alpha_max: float = typer.Option(10.0, help="largest alpha of the path"),
    inner_folds: int = typer.Option(5, help="inner k-fold for 'auto'"),
    cv: str = typer.Option("loo", help="outer CV: loo | kfold | group"),
    n_folds: int = typer.Option(5, help="outer folds for cv=kfold"),
    seed: int = typer.Option(0, help="seed of fold splits and permutations"),
    sample_weight: str = typer.Option("none", help="none | cells"),
    n_permutations: int = typer.Option(1000, help="permutation null size (0 = off)"),
    null_stop_after: int = typer.Option(
        10, help="stop permuting a gene after this many exceedances (0 = never)"
    ),
    fdr_q: float = typer.Option(0.1, help="Benjamini-Hochberg level"),
    executor: str = typer.Option("inprocess", help="inprocess | local | address (Dask)"),
    n_workers: int = typer.Option(2, help="worker processes for --executor local"),
    threads_per_worker: int = typer.Option(1, help="threads per Dask worker (numba/BLAS)"),
    address: str = typer.Option("", help="Dask scheduler address for --executor address"),
    gene_chunk: int = typer.Option(0, help="genes per task (0 = all at once); same results"),
    stream_targets: bool = typer.Option(
        False,
        "--stream-targets/--no-stream-targets",
        help="read targets a gene chunk at a time (bounded memory for large paired sets); "
        "out-of-fold predictions are then kept only for the plotted genes",
    ),
    prepared_dir: Path = typer.Option(paths.PREPARED, help="folder with prepare's tables"),
    model_dir: Path = typer.Option(paths.MODEL, help="model store output folder"),
    out_dir: Path = typer.Option(paths.DATA / "train", help="per-gene tables output folder"),
    metrics: Path = typer.Option(paths.METRICS / "train.json", help="metrics JSON"),
    plots_dir: Path = typer.Option(paths.PLOTS / "train", help="plots output folder"),
) -> None:
    """Fit every gene, evaluate honestly, write the model store, tables, metrics and plots."""
    start = time.perf_counter()
    settings = TrainSettings(
        penalty=penalty, l1_ratio=l1_ratio, alpha=alpha, n_alphas=n_alphas,
        alpha_min=alpha_min, alpha_max=alpha_max, inner_folds=inner_folds, cv=cv,
        n_folds=n_folds, seed=seed, sample_weight=sample_weight,
        n_permutations=n_permutations, null_stop_after=null_stop_after, fdr_q=fdr_q,
    )  # fmt: skip
    inputs = {
        "train_features": prepared_dir / "train_features.parquet",
        "train_targets": prepared_dir / "train_targets.parquet",
        "train_types": prepared_dir / "train_types.parquet",
    }
    run_on = ExecutorSettings(
        kind=executor, n_workers=n_workers, threads_per_worker=threads_per_worker,
        address=address, gene_chunk=gene_chunk,
    )  # fmt: skip
    features, targets, types = load_training_inputs(*inputs.values(), stream=stream_targets)
    with open_executor(run_on) as ex:
        result = train_and_evaluate(
            features, targets, types, settings, executor=ex, gene_chunk=run_on.gene_chunk,
            keep_oof=not stream_targets,
        )  # fmt: skip
    final = result.final
    oof, shown = result.oof, targets
    if stream_targets:
        # Genes are independent, so refitting only the plotted genes (without the null)
        # gives exactly their out-of-fold predictions from the full run.
        best, markers = plotted_genes(result.per_gene)
        shown = pd.read_parquet(inputs["train_targets"], filters=[("gene", "in", best + markers)])
        shown = shown[list(features.index)].astype(float)
        oof = train_and_evaluate(
            features, shown, types, dataclasses.replace(settings, n_permutations=0)
        ).oof

    # model store: everything predict needs, in original feature units, no pickle
    genes = result.per_gene.copy()
    genes.insert(0, "intercept", final.intercept_)
    coef = pd.DataFrame(final.coef_, index=targets.index.copy(), columns=list(features.columns))
    X = features.to_numpy(dtype=float)
    store = ModelStore(
        features=list(features.columns),
        coef=coef,
        genes=genes,
        scaler_mean=final.mean_,
        scaler_scale=final.scale_,
        feature_min=X.min(axis=0),
        feature_max=X.max(axis=0),
        penalty=settings.penalty,
        l1_ratio=final._l1_ratio(),
        provenance={
            "params": settings.as_dict(),
            "inputs_md5": {name: file_checksum(path)[0] for name, path in inputs.items()},
            "cell_types": list(features.index),
            "feature_mean": X.mean(axis=0).tolist(),
            "alpha_path": final.alphas_.tolist() if settings.alpha == "auto" else None,
            "code": f"ephys2expr {__version__}",
        },
    )
    save_model_store(store, model_dir)

    write_parquet(result.per_gene, out_dir / "per_gene.parquet")
    write_parquet(oof, out_dir / "oof_predictions.parquet")
    plot_cols = ["cv_r2", "cv_rmse"] + [f"{b}_cv_r2" for b in BASELINES]
    plot_table = result.per_gene[plot_cols].round(6)
    plot_table.index.name = "gene"
    write_csv(plot_table, plots_dir / "per_gene.csv")
    coef_std = pd.DataFrame(final.coef_std_, index=targets.index, columns=features.columns)
    write_train_plots(result.per_gene, oof, shown, types, coef_std, plots_dir)

    m = result.metrics
    m["seconds"]["stage"] = round(time.perf_counter() - start, 3)
    write_json(m, metrics)
    null = m.get("null", {})
    log.info(
        "done in %.0f s: median out-of-fold r2 %.3f; genes beating mean/OLS/class: %s; "
        "beating all: %d; q < %g: %s",
        m["seconds"]["stage"], m["model"]["r2_median"],
        "/".join(str(m["genes_beating"][b]) for b in BASELINES),
        m["genes_beating_all_baselines"], fdr_q, null.get("genes_q_below_fdr", "n/a"),
    )  # fmt: skip
    if not np.all(final.converged_):
        log.warning("%d genes did not converge", int((~final.converged_).sum()))


if __name__ == "__main__":
    app()
