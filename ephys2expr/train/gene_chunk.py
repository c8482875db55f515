"""One chunk of genes, trained anywhere: :func:`train_gene_chunk`.

It does everything that depends on a gene alone (nested CV, baselines, final refit,
permutation null) for one chunk of genes, on any executor (in-process or Dask);
:func:`ephys2expr.train.evaluate.train_and_evaluate` runs the chunks and gathers them (BH
q-values and the summaries couple genes, so they come after gathering).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from ephys2expr.model.estimator import MultiGeneElasticNet
from ephys2expr.train.cv.baselines import baseline_predictions
from ephys2expr.train.cv.folds import pooled_scores
from ephys2expr.train.cv.nested import nested_cv
from ephys2expr.train.cv.null import NullResult, permutation_null
from ephys2expr.train.settings import TrainSettings
from ephys2expr.train.uncertainty.intervals import chunk_intervals

log = logging.getLogger("ephys2expr")


@dataclass
class GeneChunkResult:
    """Everything one chunk of genes contributes (see :func:`train_gene_chunk`).

    Attributes
    ----------
    columns : dict of str to ndarray, shape (n_genes_in_chunk,)
        Per-gene columns of the final table that depend on the gene alone.
    oof : ndarray, shape (n_types, n_genes_in_chunk) or None
    final : MultiGeneElasticNet
        The refit of these genes on all rows.
    null : NullResult or None
    seconds : dict
        Time each step took on the worker.
    """

    columns: dict
    oof: np.ndarray | None
    final: MultiGeneElasticNet
    null: NullResult | None
    seconds: dict
    intervals: dict | None = None
    inner_mse: np.ndarray | None = None


def train_gene_chunk(
    X,
    Y,
    folds,
    settings: TrainSettings,
    weights=None,
    classes=None,
    keep_oof: bool = True,
    verbose: bool = True,
    families=None,
    groups=None,
    distance=None,
    group_codes=None,
    n_groups: int = 0,
) -> GeneChunkResult:
    """Nested CV, baselines, final refit and permutation null of one chunk of genes.

    Genes are independent given the shared design ``X``, the seeded outer and inner folds and
    the seeded permutation sequence, so the results of consecutive chunks concatenated equal
    the results of all genes at once. Only Benjamini-Hochberg and the summaries couple genes;
    they are computed after all chunks are gathered (:func:`train_and_evaluate`).

    Parameters
    ----------
    X : ndarray, shape (n_types, n_features)
    Y : ndarray, shape (n_types, n_genes_in_chunk)
    folds, settings, weights, classes : as in :func:`train_and_evaluate`.
    families : ndarray, shape (n_types,), optional
        RNA family per cell (per-cell data): adds the ``family`` ceiling.
    groups : ndarray, shape (n_types,), optional
        Animal per cell with ``cv: group_kfold``: inner alpha searches keep animals whole.
    distance, group_codes, n_groups : optional
        Each row's kNN distance to its outer training fold and its group (family) code:
        the prediction intervals' calibration and CV coverage
        (:func:`~ephys2expr.train.uncertainty.intervals.chunk_intervals`; skipped without
        ``distance``).
    keep_oof : bool
        Return the out-of-fold predictions (n_types x genes: with per-cell rows that is the
        size of the input, so callers streaming many cells drop or write it per chunk).
    verbose : bool
        Log per outer fold / permutation (the whole set in one chunk, as before chunking).
    """
    t0 = time.perf_counter()
    Y = np.ascontiguousarray(Y, dtype=float)
    # model lasso/mixture/best: the kinds are compared per gene by inner-CV error
    inner_score = settings.model != "lasso"
    cv = nested_cv(
        X, Y, folds, settings, weights, verbose=verbose, groups=groups, inner_score=inner_score
    )
    r2, rmse = pooled_scores(Y, cv.oof)
    t1 = time.perf_counter()
    base = baseline_predictions(X, Y, folds, weights, classes, families)
    base_scores = {name: pooled_scores(Y, pred) for name, pred in base.items()}
    del base
    t2 = time.perf_counter()
    final = settings.estimator(n_rows=X.shape[0], inner_score=inner_score).fit(
        X, Y, weights, groups=groups
    )
    train_r2, _ = pooled_scores(Y, final.predict(X))
    t3 = time.perf_counter()
    if verbose:
        log.info("baselines (%.1f s) and final refit (%.1f s) done", t2 - t1, t3 - t2)
    cols = _gene_columns(Y, r2, rmse, train_r2, final, cv.fold_alpha, base_scores)
    null = _chunk_null(X, Y, folds, cv, settings, weights, verbose)
    t4 = time.perf_counter()
    intervals = None
    if distance is not None:
        intervals = chunk_intervals(X, Y, cv.oof, folds, distance, group_codes, n_groups)
    seconds = {
        "intervals": time.perf_counter() - t4,
        "nested_cv": cv.seconds,
        "baselines": t2 - t1,
        "final_fit": t3 - t2,
        "permutation_null": null.seconds if null is not None else 0.0,
        "chunk": time.perf_counter() - t0,
    }
    return GeneChunkResult(
        cols, cv.oof if keep_oof else None, final, null, seconds, intervals, cv.fold_inner_mse
    )


def _gene_columns(Y, r2, rmse, train_r2, final, fold_alpha, base_scores) -> dict:
    """The chunk's per-gene columns: scores, alphas, sparsity, the baselines' scores."""
    cols = {
        "cv_r2": r2,
        "cv_rmse": rmse,
        "train_r2": train_r2,
        "alpha": final.alpha_,
        "fold_alpha_median": np.median(fold_alpha, axis=0),
        "n_nonzero": (final.coef_ != 0).sum(axis=1),
        "y_mean": Y.mean(axis=0),
        "y_sd": Y.std(axis=0),
    }
    for name, (b_r2, b_rmse) in base_scores.items():
        cols[f"{name}_cv_r2"] = b_r2
        cols[f"{name}_cv_rmse"] = b_rmse
    return cols


def _chunk_null(X, Y, folds, cv, settings, weights, verbose):
    """The permutation null of the chunk's linear models (None without permutations)."""
    null = None
    if settings.n_permutations > 0:
        # the null tests the linear model's r2 (its kernels compute the linear fits' errors);
        # cv_r2 above is of the clipped predictions, what a user gets
        linear_r2, _ = pooled_scores(Y, cv.oof_linear)
        null = permutation_null(
            X,
            Y,
            folds,
            cv.fold_alpha,
            linear_r2,
            settings,
            weights,
            stop_after=settings.null_stop_after,
            verbose=verbose,
        )
    return null


def train_chunk_task(X, Y, folds, settings, weights, classes, keep_oof, verbose, labels):
    """Module-level (picklable) entry point of one gene chunk, BLAS limited to one thread."""
    with threadpool_limits(limits=1, user_api="blas"):
        return train_gene_chunk(X, Y, folds, settings, weights, classes, keep_oof, verbose, *labels)


__all__ = ["GeneChunkResult", "train_chunk_task", "train_gene_chunk"]
