"""Train and evaluate one feature set honestly: :func:`train_and_evaluate`.

The outer CV's folds, each gene chunk's nested CV, baselines, intervals and permutation null
(:func:`~ephys2expr.train.gene_chunk.train_gene_chunk`, on the executor), gathered into one
:class:`TrainResult` with the BH q-values, the headline metrics and the report, and the
final refit on all rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ephys2expr.executor import Executor, ExecutorSettings, chunk_slices
from ephys2expr.model.estimator import MultiGeneElasticNet
from ephys2expr.train.cv.baselines import BASELINES
from ephys2expr.train.cv.folds import check_n_folds, outer_folds, resolve_cv
from ephys2expr.train.cv.null import NullResult, bh_qvalues
from ephys2expr.train.gene_chunk import train_chunk_task
from ephys2expr.train.settings import TrainSettings
from ephys2expr.train.summary import headline_metrics, train_report
from ephys2expr.train.uncertainty.intervals import gather_intervals, oof_distances

log = logging.getLogger("ephys2expr")


def resolved_settings(settings: TrainSettings, types: pd.DataFrame) -> TrainSettings:
    """``settings`` with ``cv: auto`` resolved for these training rows (a ``group`` column in
    ``train_types`` = per-cell data -> ``group_kfold``; else ``loo``) and ``model`` resolved
    (type-mean rows, without ``family`` and ``type`` per cell, have no cells to classify:
    ``lasso``): what a store records."""
    cv = resolve_cv(settings.cv, "group" in types.columns)
    per_cell = {"group", "family", "type"} <= set(types.columns)
    model = settings.model if per_cell else "lasso"
    if model != settings.model:
        log.info(
            "model %r needs cells with a family and type (per-cell sources); these rows "
            "are cell-type means: model 'lasso'",
            settings.model,
        )
    if (cv, model) == (settings.cv, settings.model):
        return settings
    return settings.replace(cv=cv, model=model)


def _concat_final(parts: list[MultiGeneElasticNet]) -> MultiGeneElasticNet:
    """One fitted estimator from the per-chunk refits (same attributes as one big fit)."""
    if len(parts) == 1:
        return parts[0]
    est = parts[0]
    out = MultiGeneElasticNet(
        **{
            k: getattr(est, k)
            for k in (
                "penalty",
                "alpha",
                "l1_ratio",
                "alphas",
                "inner_cv",
                "random_state",
                "standardize",
                "tol",
                "max_iter",
                "chunk_size",
            )
        }
    )
    for attr in (
        "coef_",
        "intercept_",
        "coef_std_",
        "intercept_std_",
        "alpha_",
        "alpha_index_",
        "n_iter_",
        "converged_",
        "cv_mse_",
    ):
        if hasattr(est, attr):
            setattr(out, attr, np.concatenate([getattr(p, attr) for p in parts]))
    out.mean_, out.scale_ = est.mean_, est.scale_
    auto = isinstance(est.alpha, str)
    out.alphas_ = est.alphas_ if auto else np.unique(out.alpha_)[::-1]
    return out


def _concat_null(parts: list[NullResult], seconds: float) -> NullResult:
    return NullResult(
        np.concatenate([p.p_value for p in parts]),
        np.concatenate([p.n_permutations for p in parts]),
        int(sum(p.n_fits for p in parts)),
        seconds,
    )


@dataclass
class TrainResult:
    """All outputs of :func:`train_and_evaluate`.

    Attributes
    ----------
    per_gene : pandas.DataFrame
        Indexed by gene; scores of the model and of each baseline, ``beats_<baseline>``
        booleans, chosen alpha, non-zero coefficients, p/q values.
    oof : pandas.DataFrame or None
        Genes x cell types, out-of-fold predictions of the model (``keep_oof``).
    final : MultiGeneElasticNet
        Refitted on all cell types (alpha chosen by inner CV over all types for ``auto``).
    metrics, report : dict
        Headline numbers and the detailed summary (:mod:`ephys2expr.train.summary`).
    seconds : dict
        Worker time of each step, summed over chunks, and the wall time (logged only).
    folds : list of (train, test) index arrays
        The outer CV folds (rows of ``features``) the out-of-fold predictions came from.
    intervals : GeneIntervals
        The prediction intervals (:mod:`~ephys2expr.train.uncertainty.intervals`); their CV
        coverage is
        ``report["intervals"]``.
    """

    per_gene: pd.DataFrame
    oof: pd.DataFrame | None
    final: MultiGeneElasticNet
    metrics: dict
    report: dict
    seconds: dict
    folds: list = field(default_factory=list)
    intervals: object = None
    inner_mse: np.ndarray | None = None
    # what the intervals were calibrated on, to recalibrate them on another model's
    # out-of-fold predictions (train.model mixture | best): (distance, group codes, groups)
    interval_rows: tuple | None = None
    # each row's held-out coverage under the chosen intervals (train/uncertainty/ood.py sets
    # it against the OOD score)
    row_coverage: np.ndarray | None = None


def train_and_evaluate(
    features: pd.DataFrame,
    targets,
    types: pd.DataFrame,
    settings: TrainSettings,
    executor=None,
    gene_chunk: int = 0,
    keep_oof: bool = True,
) -> TrainResult:
    """Nested CV, baselines, permutation null and the final refit.

    Parameters
    ----------
    features : DataFrame, cell types x features (original units)
    targets : DataFrame (genes x cell types, log2 expression, columns in ``features`` order)
        or :class:`ParquetTargets` (read chunk by chunk)
    types : DataFrame indexed by cell type with ``broad_type`` and ``weight``
    settings : TrainSettings
    executor : ephys2expr.executor.Executor, optional
        Where the gene chunks run (default: in this process).
    gene_chunk : int
        Genes per chunk (0 = all genes in one chunk). Results do not depend on it.
    keep_oof : bool
        Gather the out-of-fold predictions (``TrainResult.oof``; None otherwise).

    Notes
    -----
    BLAS is limited to one thread meanwhile: the matrix products here are small (tens of
    rows), and OpenBLAS threads spinning on them cost more CPU than they save and compete
    with the solver's own numba threads (measured: the per-fold set-up was ~5x slower).
    """
    executor = executor or Executor(ExecutorSettings())
    settings = resolved_settings(settings, types)
    t0 = time.perf_counter()
    X = features.to_numpy(dtype=float)
    n = X.shape[0]
    genes = targets.index.copy()
    n_genes = len(genes)
    weights = (
        types.loc[features.index, "weight"].to_numpy(dtype=float)
        if settings.sample_weight == "cells"
        else None
    )
    rows = types.loc[features.index]
    classes = rows["broad_type"].to_numpy()
    cells = rows["group"].astype(str).to_numpy() if "group" in rows.columns else None
    check_n_folds(settings, n, cells)
    folds = outer_folds(n, settings.cv, settings.n_folds, classes, settings.seed, cells)
    families, group_names, group_codes, labels = _chunk_labels(
        X, folds, rows, classes, cells, settings
    )
    slices = chunk_slices(n_genes, gene_chunk)
    _log_training(n_genes, n, cells, X, settings, folds, slices, executor)
    verbose = len(slices) == 1 and executor.client is None
    if isinstance(targets, pd.DataFrame):
        blocks = (targets.iloc[sl].to_numpy(dtype=float) for sl in slices)
    else:
        blocks = targets.iter_chunks(gene_chunk)
    common = (folds, settings, weights, classes, keep_oof, verbose, labels)
    tasks = ((X, np.ascontiguousarray(b.T), *common) for b in blocks)
    parts = list(
        executor.map_ordered(train_chunk_task, tasks, what="gene chunks", total=len(slices))
    )
    rows = "types" if cells is None else "cells"
    groups = (
        np.bincount(group_codes, minlength=len(group_names)),
        list(group_names),
        "family" if families is not None else "broad_type",
    )
    return _gather(
        parts, features, genes, n, folds, settings, t0, rows, (labels[2], group_codes, groups)
    )


def _chunk_labels(X, folds, rows, classes, cells, settings):
    """What every gene chunk needs besides the data: the families (per-cell data), the
    animals of the inner folds, each row's kNN distance to its outer training fold and its
    interval group; ``(families, group_names, group_codes, labels)``."""
    # per-cell data: the family ceiling, and animals kept whole in the inner alpha search
    families = rows["family"].astype(str).to_numpy() if "family" in rows.columns else None
    # intervals: coverage per family (per-cell data) or broad type (type means)
    group_names, group_codes = np.unique(
        families if families is not None else classes.astype(str), return_inverse=True
    )
    labels = (
        families,
        cells if settings.cv == "group_kfold" else None,
        oof_distances(X, folds),
        group_codes,
        len(group_names),
    )
    return families, group_names, group_codes, labels


def _log_training(n_genes, n, cells, X, settings, folds, slices, executor) -> None:
    """The one line saying what is trained, on what rows, in how many chunks."""
    rows_are = "cells" if cells is not None else "cell types"
    log.info(
        "training %d genes on %d %s x %d features: %s, alpha=%s, %s outer CV "
        "(%d folds); %d gene chunk(s), %s executor",
        n_genes,
        n,
        rows_are,
        X.shape[1],
        settings.penalty,
        settings.alpha,
        settings.cv,
        len(folds),
        len(slices),
        executor.settings.kind,
    )


def _gather(
    parts, features, genes, n, folds, settings: TrainSettings, t0, rows: str, interval_rows
) -> TrainResult:
    """Concatenate the chunks, then the gene-coupling steps: BH q-values and summaries."""
    per_gene = pd.DataFrame(index=genes)
    for col in parts[0].columns:
        per_gene[col] = np.concatenate([p.columns[col] for p in parts])
    final = _concat_final([p.final for p in parts])
    r2 = per_gene["cv_r2"].to_numpy()
    for name in BASELINES:
        # a constant gene (NaN r2) beats nothing
        b_r2 = per_gene[f"{name}_cv_r2"].to_numpy()
        per_gene[f"beats_{name}"] = np.nan_to_num(r2, nan=-np.inf) > np.nan_to_num(b_r2, nan=np.inf)
    # seconds: summed over chunks (worker time; equal to wall time in-process)
    secs = {k: float(sum(p.seconds[k] for p in parts)) for k in parts[0].seconds}
    null = None
    if settings.n_permutations > 0:
        null = _concat_null([p.null for p in parts], secs["permutation_null"])
        per_gene["p_value"] = null.p_value
        per_gene["q_value"] = bh_qvalues(null.p_value)  # after gathering: BH couples genes
        per_gene["n_permutations"] = null.n_permutations
        per_gene["significant"] = per_gene["q_value"].to_numpy() < settings.fdr_q
    report = train_report(
        per_gene,
        final,
        n,
        features.shape[1],
        len(folds),
        settings,
        null.n_fits if null is not None else 0,
        rows,
    )
    secs["total"] = time.perf_counter() - t0
    log.info(
        "trained in %.1f s (worker time: nested CV %.1f s, baselines %.1f s, final fit %.1f s, "
        "permutation null %.1f s)",
        secs["total"],
        secs["nested_cv"],
        secs["baselines"],
        secs["final_fit"],
        secs["permutation_null"],
    )
    intervals, report["intervals"], row_coverage = gather_intervals(
        [p.intervals for p in parts],
        genes,
        list(features.columns),
        per_gene["y_sd"],
        *interval_rows[2],
    )
    oof = None
    if parts[0].oof is not None:
        oof_arr = np.concatenate([p.oof for p in parts], axis=1)
        oof = pd.DataFrame(oof_arr.T, index=genes.copy(), columns=features.index.copy())
    inner = None
    if parts[0].inner_mse is not None:
        inner = np.concatenate([p.inner_mse for p in parts], axis=1)
    return TrainResult(
        per_gene,
        oof,
        final,
        headline_metrics(report),
        report,
        secs,
        folds,
        intervals,
        inner,
        interval_rows,
        row_coverage,
    )


__all__ = ["TrainResult", "resolved_settings", "train_and_evaluate"]
