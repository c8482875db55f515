"""The permutation null: per-gene p-values of the out-of-fold r2, and BH q-values."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.stats import false_discovery_control

from ephys2expr.model.path import penalty_strengths
from ephys2expr.scaling import scaler_stats
from ephys2expr.train.cv._null_kernel import null_r2_kernel
from ephys2expr.train.cv.nested import log_progress
from ephys2expr.train.settings import TrainSettings


@dataclass
class NullResult:
    """Per-gene permutation p-values.

    Attributes
    ----------
    p_value : ndarray, shape (n_genes,)
        Sequential Monte Carlo p-value (see :func:`permutation_null`).
    n_permutations : ndarray of int, shape (n_genes,)
        Permutations each gene went through.
    n_fits : int
        Gene x permutation cross-validations run in total.
    seconds : float
    """

    p_value: np.ndarray
    n_permutations: np.ndarray
    n_fits: int
    seconds: float


# pairs (gene, permutation) per kernel call: bounds memory (~24 bytes a pair), results do
# not depend on it
MAX_PAIRS = 1 << 20

# the kernel's fold-sum path where it applies (see fold_designs); benchmarks/bench_null.py
# switches it off to time the per-row path on the same data
FOLD_SUMS = True

# the order of null_r2_kernel's arguments after (Yt, pair_gene, pair_perm, perms)
_KERNEL_ARGS = (
    "fold_order",
    "wx",
    "w",
    "fold_w",
    "fold_m",
    "fold_s",
    "te_ptr",
    "te_rows",
    "te_x",
    "grams",
    "singular",
    "l1",
    "l2",
    "tr_ptr",
    "tr_rows",
    "tol",
    "max_iter",
    "sums_x",
    "te_sum",
    "te_gram",
)


def fold_sums_apply(folds, n_rows: int, n_features: int) -> bool:
    """Whether the null kernel takes its fold-sum path for these folds: their test rows
    partition the rows, and every fold has more test rows than there are features."""
    te = [np.asarray(f[1]) for f in folds]
    partition = np.array_equal(np.sort(np.concatenate(te)), np.arange(n_rows))
    return partition and min(len(t) for t in te) > n_features


def fold_designs(X, folds, fold_alpha, settings: TrainSettings, weights=None) -> dict:
    """What every permutation shares, fold by fold: the null kernel's arguments.

    Each fold is standardised with its own training rows (unweighted mean and std, as
    :class:`~ephys2expr.model.estimator.MultiGeneElasticNet`) and centred with the weighted
    training mean; from that the Gram matrix, the standardised test rows and the per-gene
    penalties, as the estimator computes them for one alpha per gene. ``X'Wy/S`` is left to
    the kernel, from the globally standardised design ``wx`` and each fold's weighted mean
    ``fold_m`` and scale ``fold_s`` in those units (see :mod:`ephys2expr.train.cv._null_kernel`).
    Each gene visits the folds in decreasing order of its alpha (``fold_order``).
    """
    X = np.asarray(X, dtype=float)
    est = settings.estimator()
    l1_ratio = est._l1_ratio()
    w_all = np.ones(X.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    mu, sigma = scaler_stats(X)
    x0 = (X - mu) / sigma
    keys = ("fold_w", "fold_m", "fold_s", "te_x", "grams", "l1", "l2")
    parts = {key: [] for key in keys}
    for k, (tr, te) in enumerate(folds):
        mean, scale = scaler_stats(X[tr])
        xs = (X[tr] - mean) / scale
        w = w_all[tr]
        wsum = w.sum()
        xbar = w @ xs / wsum
        xc = xs - xbar
        l1, l2 = penalty_strengths(est.penalty, np.asarray(fold_alpha[k], float), l1_ratio, wsum)
        vals = (
            wsum,
            w @ x0[tr] / wsum,
            scale / sigma,
            (X[te] - mean) / scale - xbar,
            xc.T @ (xc * w[:, None]) / wsum,
            l1,
            l2,
        )
        for key, val in zip(keys, vals, strict=True):
            parts[key].append(val)
    out = {key: np.ascontiguousarray(np.stack(parts[key])) for key in keys if key != "te_x"}
    out["te_x"] = np.ascontiguousarray(np.concatenate(parts["te_x"]))
    for key, i in (("tr", 0), ("te", 1)):
        out[f"{key}_rows"] = np.concatenate([f[i] for f in folds]).astype(np.int64)
        out[f"{key}_ptr"] = np.cumsum([0] + [len(f[i]) for f in folds]).astype(np.int64)
    ev = np.linalg.eigvalsh(out["grams"])
    out["singular"] = ev[:, 0] <= 1e-12 * np.maximum(ev[:, -1], np.finfo(float).tiny)
    out["wx"] = np.ascontiguousarray(x0 * w_all[:, None])
    out["w"] = w_all
    # stable: folds with equal alpha keep their order
    alpha_desc = np.argsort(-np.asarray(fold_alpha, dtype=float).T, axis=1, kind="stable")
    out["fold_order"] = np.ascontiguousarray(alpha_desc.astype(np.int64))
    out["tol"], out["max_iter"] = float(est.tol), int(est.max_iter)
    # Many test rows per fold (per-cell data): the kernel takes each fold's test-row sums
    # in one pass over contiguous rows and its test error from the expansion
    # |y - ybar - te_x b|^2 (O(p^2)), instead of row-by-row arithmetic (measured on the
    # Scala cells: the null 1.4-1.9x faster over three runs). Leave-one-out keeps the
    # per-row path.
    p = X.shape[1]
    if FOLD_SUMS and fold_sums_apply(folds, X.shape[0], p):
        te_rows, te_x = out["te_rows"], out["te_x"]
        out["sums_x"] = np.ascontiguousarray(
            np.hstack([out["wx"][te_rows], te_x, w_all[te_rows][:, None]])
        )
        blocks = [te_x[a:b] for a, b in zip(out["te_ptr"][:-1], out["te_ptr"][1:], strict=True)]
        out["te_sum"] = np.stack([block.sum(axis=0) for block in blocks])
        out["te_gram"] = np.stack([block.T @ block for block in blocks])
    else:
        out["sums_x"] = np.zeros((0, 2 * p + 1))
        out["te_sum"] = np.zeros((0, p))
        out["te_gram"] = np.zeros((0, p, p))
    return out


def permutation_null(
    X,
    Y,
    folds,
    fold_alpha,
    observed_r2,
    settings: TrainSettings,
    weights=None,
    stop_after=10,
    verbose: bool = True,
) -> NullResult:
    """Permute cell types (rows of ``Y``) against the features and rerun the same outer CV.

    Three things keep this affordable:

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
    * the design side of every fold (standardisation, Gram matrix, test rows) does not move
      under a permutation, so it is computed once (:func:`fold_designs`), and the outer CV of
      many (gene, permutation) pairs runs in one numba call
      (:func:`ephys2expr.train.cv._null_kernel.null_r2_kernel`); a pair stops at the fold where
      its r2 can no longer reach the observed one (the squared error only grows). Each gene
      goes through the
      permutation sequence at its own pace: a round gives it its next permutations (at
      least the ``stop_after - h`` that could stop it, and an eighth of those it has had),
      and results past its stop are dropped in permutation order, so the result is that of
      the one-permutation-at-a-time loop (``benchmarks/bench_null.py`` keeps that loop;
      tests compare the two). ``n_fits`` counts the pairs that entered a p-value.

    Folds, weights (they stay with the feature rows) and per-fold standardisation are
    unchanged. Every gene sees the same sequence of permutations (seeded, drawn in full up
    front), so a gene's p-value does not depend on the other genes it is computed with (what
    lets gene chunks run anywhere).
    """
    start = time.perf_counter()
    n, n_genes = Y.shape
    B = settings.n_permutations
    rng = np.random.default_rng(settings.seed)
    perms = np.array([rng.permutation(n) for _ in range(B)], dtype=np.int64).reshape(B, n)
    observed = np.nan_to_num(np.asarray(observed_r2, dtype=float), nan=np.inf)
    ge = np.zeros(n_genes, dtype=np.int64)
    used = np.zeros(n_genes, dtype=np.int64)
    active = np.flatnonzero(np.isfinite(observed)) if B > 0 else np.zeros(0, dtype=np.int64)
    design = fold_designs(X, folds, fold_alpha, settings, weights) if active.size else None
    Yt = np.ascontiguousarray(np.asarray(Y, dtype=float).T)
    fits = 0
    logged = 0
    while active.size:
        todo = _one_round(active, ge, used, B, stop_after, Yt, perms, design, observed)
        fits += int(todo.sum())
        keep = used[active] < B
        if stop_after > 0:
            keep &= ge[active] < stop_after
        done = int(used[active[keep]].min()) if keep.any() else B
        if verbose and (done - logged >= max(1, B // 10) or done == B):
            logged = done
            log_progress(f"permutation null ({keep.sum()} genes still permuted):", done, B, start)
        active = active[keep]
    p = sequential_p_values(ge, used, observed, B, stop_after)
    return NullResult(p, used, fits, time.perf_counter() - start)


def _one_round(active, ge, used, B, stop_after, Yt, perms, design, observed) -> np.ndarray:
    """One round of the null: each active gene's next permutations through the kernel;
    updates ``ge`` (exceedances) and ``used`` (permutations counted) in place and returns
    how many each gene used."""
    todo = B - used[active]
    if stop_after > 0:
        # at least the fewest permutations that could stop the gene, and an eighth of
        # those it has had (fewer, larger rounds; pairs past a stop are dropped below)
        todo = np.minimum(todo, np.maximum(stop_after - ge[active], used[active] // 8))
    todo = np.minimum(todo, max(1, MAX_PAIRS // active.size))
    first = np.cumsum(todo) - todo  # where each gene's pairs start
    pair_gene = np.repeat(active, todo)
    pair_perm = np.repeat(used[active] - first, todo) + np.arange(todo.sum())
    r2 = np.empty(pair_gene.size)
    null_r2_kernel(
        Yt, pair_gene, pair_perm, perms, *(design[k] for k in _KERNEL_ARGS), observed, r2
    )
    # tiny slack so that exact ties (e.g. identical mean-only predictions) count as >=
    exceed = (r2 >= observed[pair_gene] - 1e-12).astype(np.int64)
    if stop_after > 0:  # keep a pair only if its gene had not stopped before it
        before = np.cumsum(exceed) - exceed
        before -= np.repeat(before[first], todo)
        kept = ge[pair_gene] + before < stop_after
        exceed *= kept
        todo = np.add.reduceat(kept.astype(np.int64), first)
    ge[active] += np.add.reduceat(exceed, first)
    used[active] += todo
    return todo


def sequential_p_values(ge, used, observed, n_permutations: int, stop_after: int):
    """P-values from the per-gene counts (see :func:`permutation_null`): ``ge`` exceedances
    after ``used`` permutations, ``observed`` the real-data r2 (inf where it is undefined:
    p = 1)."""
    stopped = (stop_after > 0) & (ge >= stop_after)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(stopped, ge / np.maximum(used, 1), (1.0 + ge) / (1.0 + n_permutations))
    return np.where(np.isfinite(observed), np.minimum(p, 1.0), 1.0)


def bh_qvalues(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), via scipy."""
    p = np.asarray(p, dtype=float)
    if p.size == 0:
        return p
    return false_discovery_control(p, method="bh")


__all__ = [
    "NullResult",
    "bh_qvalues",
    "fold_designs",
    "permutation_null",
    "sequential_p_values",
]
