"""The permutation null: per-gene p-values of the out-of-fold r2, and BH q-values."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.stats import false_discovery_control

from ephys2expr.train.cv import log_progress, nested_cv
from ephys2expr.train.folds import pooled_scores
from ephys2expr.train.settings import TrainSettings


@dataclass
class NullResult:
    """Per-gene permutation p-values.

    Attributes
    ----------
    p_value : ndarray, shape (n_genes,)
        Sequential Monte Carlo p-value (see :func:`permutation_null`).
    null_r2_mean : ndarray, shape (n_genes,)
        Mean out-of-fold r2 over the permutations the gene went through.
    n_permutations : ndarray of int, shape (n_genes,)
        Permutations each gene went through.
    n_fits : int
        Gene x permutation cross-validations run in total.
    seconds : float
    """

    p_value: np.ndarray
    null_r2_mean: np.ndarray
    n_permutations: np.ndarray
    n_fits: int
    seconds: float


def permutation_null(
    X, Y, folds, fold_alpha, observed_r2, settings: TrainSettings, weights=None, stop_after=10,
    verbose: bool = True,
) -> NullResult:  # fmt: skip
    """Permute cell types (rows of ``Y``) against the features and rerun the same outer CV.

    Two things keep this affordable:

    * the inner alpha search is NOT rerun: each permutation reuses, fold by fold, the alpha
      every gene got on the real data (``fold_alpha`` from :func:`nested_cv`), so one
      permutation costs one single-alpha fit per fold instead of a nested CV. (This makes the
      null slightly optimistic for the permuted fits - they get an alpha tuned on other data -
      only if that alpha overfits; genes whose alpha zeroes every coefficient get exactly the
      mean prediction under every permutation, hence p = 1 under leave-one-out.)
    * sequential Monte Carlo p-values (Besag & Clifford 1991): a gene stops being permuted
      once ``stop_after`` permutations have reached its observed r2, with p = h / L (h
      exceedances after L permutations); genes that never get there use all permutations,
      p = (1 + h) / (1 + n_permutations). Clearly null genes stop after a few permutations,
      so the cost goes to the genes where the p-value matters. ``stop_after=0`` disables it.

    Folds, weights (they stay with the feature rows) and per-fold standardisation are
    unchanged. Every gene sees the same sequence of permutations (seeded): the sequence is
    drawn in full whatever genes are still active, so a gene's p-value does not depend on the
    other genes it is computed with (what lets gene chunks run anywhere).
    """
    start = time.perf_counter()
    n, n_genes = Y.shape
    B = settings.n_permutations
    rng = np.random.default_rng(settings.seed)
    observed = np.nan_to_num(np.asarray(observed_r2, dtype=float), nan=np.inf)
    ge = np.zeros(n_genes, dtype=np.int64)
    used = np.zeros(n_genes, dtype=np.int64)
    null_sum = np.zeros(n_genes)
    active = np.flatnonzero(np.isfinite(observed))
    fits = 0
    for b in range(B):
        perm = rng.permutation(n)
        if active.size == 0:
            continue
        Yp = Y[perm][:, active]
        cv = nested_cv(X, Yp, folds, settings, weights, fold_alpha=fold_alpha[:, active])
        r2, _ = pooled_scores(Yp, cv.oof)
        fits += active.size
        used[active] += 1
        null_sum[active] += r2
        # tiny slack so that exact ties (e.g. identical mean-only predictions) count as >=
        ge[active] += r2 >= observed[active] - 1e-12
        if stop_after > 0:
            active = active[ge[active] < stop_after]
        if verbose and ((b + 1) % max(1, B // 10) == 0 or b + 1 == B):
            log_progress(f"permutation null ({active.size} genes still permuted):", b + 1, B, start)
    stopped = (stop_after > 0) & (ge >= stop_after)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(stopped, ge / np.maximum(used, 1), (1.0 + ge) / (1.0 + B))
        null_mean = np.where(used > 0, null_sum / np.maximum(used, 1), np.nan)
    p = np.where(np.isfinite(observed), np.minimum(p, 1.0), 1.0)
    return NullResult(p, null_mean, used, fits, time.perf_counter() - start)


def bh_qvalues(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), via scipy."""
    p = np.asarray(p, dtype=float)
    if p.size == 0:
        return p
    return false_discovery_control(p, method="bh")


__all__ = ["NullResult", "bh_qvalues", "permutation_null"]
