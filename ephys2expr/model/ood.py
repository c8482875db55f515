"""How far a cell is from what the model knows: kNN distance percentiles and table shifts.

:class:`NeighborScore` scores rows by their mean Euclidean distance to their ``k`` nearest
training rows in standardised feature space (scikit-learn's ``NearestNeighbors``),
expressed as a percentile among the training rows' own leave-one-out kNN distances (same
``k``): a training row's own score is uniform on 0-100, so ``score > 99`` flags about 1 %
of cells like the training rows and nearly every cell far from all of them.
:func:`shift_summary` compares a whole table with the training rows, feature by feature
(standardised mean difference and the Kolmogorov-Smirnov statistic). :func:`range_excess`
measures how far a cell lies beyond the training range, :func:`bound_features` moves it
into the range before a linear model predicts it.

Used by predict (per cell, ``ood_score``/``ood``) and train (the same score for held-out
rows against their training fold: what the flag costs in CV).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ephys2expr.rounding import significant


def neighbors_k(k: int, n_train: int) -> int:
    """The ``k`` used with ``n_train`` training rows: at most ``n_train - 1`` (leave-one-out
    needs one row left) and at most ``floor(sqrt(n_train))``, so that a neighbourhood stays
    a small part of the training rows (the usual ``k <= sqrt(n)`` rule of thumb). That only
    binds below 36 rows: the 20-type store (19 in a leave-one-out fold) uses its 4 nearest
    types (5 would be a quarter of all types); per-cell stores use ``k``. 0 when fewer
    than 2 rows (no score)."""
    if n_train < 2:
        return 0
    return max(1, min(int(k), n_train - 1, math.isqrt(n_train)))


# relative distance beyond the range that still counts as inside (1e-12 noise is far below)
EDGE_TOLERANCE = 1e-9


def range_excess(X, lo, hi) -> np.ndarray:
    """Cells x features: how far each value lies beyond the training range ``[lo, hi]`` of
    its feature, in units of that range (0 inside it; a constant feature's range counts as
    1). The screen's ``max_range_excess`` and the widening of a far cell's interval
    (:mod:`ephys2expr.predict.intervals`) both measure distance so.

    Beyond by less than :data:`EDGE_TOLERANCE` counts as inside: a cell on the range's edge
    (a discrete feature's top value) stays in it whatever the last bits of another
    machine's arithmetic, rather than jumping to a far cell's interval."""
    X = np.asarray(X, dtype=float)
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    span = np.where(hi > lo, hi - lo, 1.0)
    with np.errstate(invalid="ignore"):  # NaN (a missing value) counts as inside
        out = np.maximum(np.maximum(lo - X, X - hi), 0.0) / span
    out = np.where(out > EDGE_TOLERANCE, out, 0.0)
    return np.nan_to_num(out, nan=0.0)


def bound_features(X: np.ndarray, centre: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """``X`` (cells x features, original units) with each cell beyond the training range
    ``[lo, hi]`` moved toward the training mean ``centre`` until it is inside: ``centre +
    t (x - centre)`` with the largest ``t <= 1`` that keeps every feature in its range
    (cells inside are returned unchanged, bit for bit). What a linear model of new cells
    is given.

    A linear model extrapolated from the 20 training rows of the type-mean store sent
    foreign cells to the expression ceiling or to 0 (Gad1 0 for all 80 cells of another
    lab's Patch-seq set: an Exc/Inh AUC through Gad1 of 0.50, 0.91 before the clip), and
    clipping each feature to its range alone loses the features in which a whole batch is
    shifted. Shrinking along the line to the mean keeps each cell's direction: on the
    1,070 Scala cells (99.6 % outside the 20 types' range) a type-mean model's Gad1 ranks
    Exc/Inh with AUC 0.89 (0.85 extrapolated, 0.74 once clipped at 0, 0.72 with each
    feature clipped; tests/test_honest_outputs.py). How far a cell was moved widens its
    interval (:mod:`ephys2expr.predict.intervals`). The out-of-fold predictions of CV are
    the unshrunk model's (what the r2 and the interval quantiles measure).
    """
    X = np.asarray(X, dtype=float)
    d = X - centre
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(d > 0, (hi - centre) / d, np.inf)
        down = np.where(d < 0, (lo - centre) / d, np.inf)
    t = np.minimum(1.0, np.minimum(up, down).min(axis=1, initial=np.inf))
    inside = t >= 1.0
    return np.where(inside[:, None], X, centre + t[:, None] * d)


# k of the OOD score and the percentile above which a cell is flagged: predict's defaults
# (predict.ood_neighbors, predict.ood_percentile) and what train's CV of the flag measures
NEIGHBORS = 5
PERCENTILE = 99.0


class NeighborScore:
    """kNN distance to the training rows, as a percentile of their leave-one-out distances.

    Parameters
    ----------
    k : int
        Neighbours (reduced by :func:`neighbors_k` for small training sets); predict passes
        ``predict.ood_neighbors``.

    Attributes
    ----------
    k_ : int
        The ``k`` used (0: fewer than 2 training rows, every score NaN).
    reference_ : numpy.ndarray
        The training rows' leave-one-out mean kNN distances, sorted.
    """

    def __init__(self, k: int) -> None:
        self.k = k

    def fit(self, X_std: np.ndarray) -> NeighborScore:
        """Index the standardised training rows ``X_std``; returns self."""
        X_std = np.asarray(X_std, dtype=float)
        self.k_ = neighbors_k(self.k, len(X_std))
        self.reference_ = np.array([])
        if self.k_ == 0:
            return self
        from sklearn.neighbors import NearestNeighbors  # lazy: 1-2 s a stage's start skips

        self.nn_ = NearestNeighbors(n_neighbors=self.k_).fit(X_std)
        # without X, kneighbors leaves each training row out of its own neighbours
        dist, _ = self.nn_.kneighbors()
        self.loo_distance_ = dist.mean(axis=1)
        self.reference_ = np.sort(self.loo_distance_)
        return self

    def distance(self, X_std: np.ndarray) -> np.ndarray:
        """Mean Euclidean distance of each row to its ``k_`` nearest training rows."""
        X_std = np.asarray(X_std, dtype=float)
        if self.k_ == 0 or len(X_std) == 0:
            return np.full(len(X_std), np.nan)
        dist, _ = self.nn_.kneighbors(X_std)
        return dist.mean(axis=1)

    def percentile(self, distance: np.ndarray) -> np.ndarray:
        """Percentile (0-100) of each distance among :attr:`reference_`: the mean of the
        shares below and at-or-below it (``scipy.stats.percentileofscore(kind="mean")``,
        vectorised); NaN stays NaN."""
        distance = np.asarray(distance, dtype=float)
        n = len(self.reference_)
        if n == 0:
            return np.full(distance.shape, np.nan)
        below = np.searchsorted(self.reference_, distance, side="left")
        at_or_below = np.searchsorted(self.reference_, distance, side="right")
        return np.where(np.isnan(distance), np.nan, 100.0 * (below + at_or_below) / (2 * n))

    def score(self, X_std: np.ndarray) -> np.ndarray:
        """The OOD score (percentile) of rows new to the training set."""
        return self.percentile(self.distance(X_std))

    def training_scores(self) -> np.ndarray:
        """The training rows' own scores (leave-one-out, training order)."""
        if self.k_ == 0:
            return np.array([])
        return self.percentile(self.loo_distance_)


def _digits(values: np.ndarray, digits: int = 9) -> np.ndarray:
    return np.array([significant(float(v), digits) for v in values], dtype=float)


def shift_summary(train: pd.DataFrame, table: pd.DataFrame, features: list[str]) -> dict:
    """Per feature: how the table's values differ from the training rows'.

    ``smd`` = (table mean - training mean) / pooled SD (root of the mean of both
    variances); ``ks`` and ``ks_p`` = ``scipy.stats.ks_2samp``; ``n`` = the table's non-
    missing values. Features the table lacks or has no value of are left out. Ordered by
    ``|smd|``, largest first.
    """
    from scipy import stats  # lazy, as scikit-learn above: a stage starts without them

    out = {}
    for f in features:
        if f not in table.columns or f not in train.columns:
            continue
        a = table[f].to_numpy(dtype=float)
        a = a[~np.isnan(a)]
        b = train[f].to_numpy(dtype=float)
        if len(a) == 0 or len(b) < 2:
            continue
        pooled = math.sqrt((a.var(ddof=1) if len(a) > 1 else 0.0) / 2 + b.var(ddof=1) / 2)
        smd = (a.mean() - b.mean()) / pooled if pooled > 0 else 0.0
        # on values to 9 significant digits: ties between the batch and the training rows
        # (counts, shared values) never break by the last bits of another machine's kernels
        ks = stats.ks_2samp(_digits(a), _digits(b))
        out[f] = {
            "smd": round(float(smd), 4),
            "ks": round(float(ks.statistic), 4),
            "ks_p": float(f"{ks.pvalue:.4g}"),
            "n": int(len(a)),
        }
    return dict(sorted(out.items(), key=lambda kv: -abs(kv[1]["smd"])))


def describe_shift(shift: dict, n: int = 3) -> str:
    """``"rin +1.20 (KS 0.45), ..."``: the ``n`` features that shift most (by |SMD|)."""
    top = list(shift.items())[:n]
    return ", ".join(f"{f} {s['smd']:+.2f} (KS {s['ks']:.2f})" for f, s in top) or "none"


# OOD score bins of the train stage's what-the-flag-costs table and plot
SCORE_BINS = (0.0, 50.0, 90.0, 99.0, 100.0)


def score_bins(score: np.ndarray) -> np.ndarray:
    """Bin label of each score: ``"0-50"``, ``"50-90"``, ``"90-99"``, ``">99"``
    (a bin holds its upper edge's side: ``> 99`` is the ``ood`` flag)."""
    labels = np.array(["0-50", "50-90", "90-99", ">99", ""], dtype=object)
    idx = np.searchsorted(np.array(SCORE_BINS[1:-1]), score, side="left")
    return np.where(np.isnan(score), "", labels[idx])


def error_by_score(score: np.ndarray, error: np.ndarray) -> dict:
    """Cells and median error per :func:`score_bins` bin, and Spearman's rho of score and
    error."""
    from scipy import stats

    bins = score_bins(score)
    out = {"bins": {}}
    for label in ("0-50", "50-90", "90-99", ">99"):
        sel = bins == label
        out["bins"][label] = {
            "n": int(sel.sum()),
            "median_abs_error": round(float(np.median(error[sel])), 4) if sel.any() else None,
        }
    ok = ~np.isnan(score) & ~np.isnan(error)
    rho = stats.spearmanr(score[ok], error[ok]).statistic if ok.sum() > 2 else float("nan")
    out["spearman_rho"] = round(float(rho), 4) if np.isfinite(rho) else None
    return out


__all__ = [
    "NeighborScore",
    "bound_features",
    "SCORE_BINS",
    "EDGE_TOLERANCE",
    "describe_shift",
    "error_by_score",
    "neighbors_k",
    "range_excess",
    "score_bins",
    "shift_summary",
]
