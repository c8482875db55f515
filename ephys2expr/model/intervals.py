"""Per-cell prediction intervals: split-conformal quantiles of out-of-fold residuals.

A gene's interval for a cell is ``prediction +- q * sigma``: ``q`` is the conformal
quantile of the gene's normalised out-of-fold absolute residuals ``|y - yhat| / sigma``
over the training rows (each predicted by a model that never saw it: the outer CV's
out-of-fold predictions), ``sigma`` the cell's difficulty. Three difficulty models, all one
linear form ``sigma = clip(a + b . x + c * d, lo, hi)`` per gene (``x`` the cell's features
in original units, ``d`` its mean distance to its ``k`` nearest training rows):

* ``plain`` - ``sigma = 1``: one width per gene (the split-conformal interval);
* ``features`` - ``a + b . x`` fitted by least squares to the gene's absolute residuals
  (its floor is a tenth of the mean absolute residual; clipped to the range fitted on the
  training rows, so a far cell gets the widest training scale, not an extrapolated one);
* ``knn`` - ``d + median(d)``: the kNN distance (:class:`~ephys2expr.model.ood.NeighborScore`)
  plus an offset, as crepes' ``DifficultyEstimator`` does.

The quantile is the split-conformal one crepes' ``ConformalRegressor`` takes (the
``ceil(level * (n + 1))``-th smallest normalised score; infinite when there are too few
rows), for every gene at once: :func:`conformal_quantile` (``tests/test_intervals.py``
checks it against crepes itself). A
Mondrian variant (one quantile per predicted family) would take the cell's family as
``bins``: :func:`conformal_quantile` by bin; not built (the family classifier is another
module's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError

METHODS = ("plain", "features", "knn")
# the levels whose quantiles a store holds (predict.interval_level is one of them)
LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)
# the level predict writes by default (predict.interval_level) and train selects methods at
LEVEL = 0.9
# floor of the ``features`` scale, as a fraction of the gene's mean absolute residual
SCALE_FLOOR = 0.1


def q_column(level: float) -> str:
    """Column of the store's interval table holding the quantile at ``level``."""
    return f"q_{level:g}"


def conformal_quantile(scores: np.ndarray, levels) -> np.ndarray:
    """Conformal quantile of each column of ``scores`` (rows = calibration rows) for each of
    ``levels``: the ``ceil(level * (n + 1))``-th smallest score, shape ``(len(levels),
    n_columns)``; inf where the ``n`` calibration rows are too few for the level.

    crepes' ``ConformalRegressor`` takes the same rank, but computes it as
    ``int((1 - level) * (n + 1))`` in floating point, which drops one rank where that product
    is an integer (n = 19 at 0.9: ``0.1 * 20 = 1.9999999999999996``, so crepes takes the
    largest of 19 residuals, covering 0.95 on 20 leave-one-out types); rounding the product
    to 9 digits here keeps the intended rank. Elsewhere the two are identical
    (``tests/test_intervals.py``).
    """
    scores = np.asarray(scores, dtype=float)
    n = scores.shape[0]
    ordered = np.sort(scores, axis=0)
    out = np.full((len(levels), *scores.shape[1:]), np.inf)
    for i, level in enumerate(levels):
        k = int(np.ceil(round(level * (n + 1), 9)))
        if k <= n:
            out[i] = ordered[k - 1]
    return out


def fit_scale(method: str, abs_res: np.ndarray, X: np.ndarray, distance, mean, scale) -> dict:
    """Per-gene difficulty model ``{intercept (g,), coef (g, p), knn (g,), lo (g,), hi (g,)}``.

    Parameters
    ----------
    abs_res : ndarray, shape (n_rows, n_genes)
        Out-of-fold absolute residuals of the calibration rows.
    X : ndarray, shape (n_rows, n_features)
        Their features, original units.
    distance : ndarray, shape (n_rows,) or None
        Their kNN distance to the rows their model was trained on (``knn`` only).
    mean, scale : ndarray, shape (n_features,)
        Standardisation of ``X`` for the least-squares fit (the fit is returned in original
        units).
    """
    g, p = abs_res.shape[1], X.shape[1]
    out = {
        "intercept": np.ones(g),
        "coef": np.zeros((g, p)),
        "knn": np.zeros(g),
        "lo": np.ones(g),
        "hi": np.ones(g),
    }
    if method == "plain":
        return out
    if method == "knn":
        beta = float(np.median(distance))
        out.update(
            intercept=np.full(g, beta), knn=np.ones(g), lo=np.full(g, beta), hi=np.full(g, np.inf)
        )
        return out
    if method != "features":
        raise InputError(f"interval method {method!r} is not one of {list(METHODS)}")
    Z = (X - mean) / scale
    A = np.column_stack([np.ones(len(Z)), Z])
    # least squares for every gene at once through the pseudo-inverse of the small design:
    # lstsq with 32,314 right-hand sides took 0.84 s per fold, this 0.01 s
    beta = np.linalg.pinv(A) @ abs_res  # (p + 1, g)
    fitted = A @ beta
    floor = SCALE_FLOOR * abs_res.mean(axis=0) + 1e-9
    coef = (beta[1:] / scale[:, None]).T
    out.update(
        intercept=beta[0] - coef @ mean,
        coef=coef,
        lo=np.maximum(fitted.min(axis=0), floor),
        hi=np.maximum(fitted.max(axis=0), floor),
    )
    return out


def scale_values(params: dict, X: np.ndarray, distance=None) -> np.ndarray:
    """``sigma`` (cells x genes) of a difficulty model for features ``X`` (original units)."""
    n = len(X)
    if params["coef"].any():
        sigma = np.asarray(X, dtype=float) @ params["coef"].T + params["intercept"]
    else:  # plain and knn: no product (32,314 genes x 20 folds add up)
        sigma = np.tile(params["intercept"], (n, 1))
    if distance is not None and np.any(params["knn"]):
        sigma += np.asarray(distance, dtype=float)[:, None] * params["knn"]
    return np.clip(sigma, params["lo"], params["hi"], out=sigma)


@dataclass
class GeneIntervals:
    """The interval model of one feature set: per gene its quantiles and difficulty model.

    Attributes
    ----------
    method : str
        One of :data:`METHODS` (chosen in training by cross-validated width at coverage).
    table : DataFrame
        Indexed by gene: ``q_<level>`` for each of :data:`LEVELS`, then ``scale_intercept``,
        ``scale_<feature>`` per feature, ``scale_knn``, ``scale_lo``, ``scale_hi``.
    features : list of str
        The set's features (``scale_<feature>`` columns).
    k : int
        Neighbours of the kNN distance (``knn`` only; 0 otherwise).
    """

    method: str
    table: pd.DataFrame
    features: list
    k: int = 0

    @classmethod
    def calibrate(cls, method, abs_res, X, distance, mean, scale, genes, features, k=0):
        """Fit the difficulty model and the quantiles on all training rows' residuals."""
        params = fit_scale(method, abs_res, X, distance, mean, scale)
        scores = abs_res / scale_values(params, X, distance)
        q = conformal_quantile(scores, LEVELS)
        table = pd.DataFrame({q_column(lv): q[i] for i, lv in enumerate(LEVELS)}, index=genes)
        return cls(
            method,
            _with_params(table, params, features),
            list(features),
            k if method == "knn" else 0,
        )

    @property
    def needs_distance(self) -> bool:
        return bool(np.any(self.table["scale_knn"].to_numpy() != 0))

    def params(self, genes=None) -> dict:
        """The difficulty model's arrays for the rows ``genes`` (default all)."""
        t = self.table if genes is None else self.table.iloc[genes]
        return {
            "intercept": t["scale_intercept"].to_numpy(dtype=float),
            "coef": t[[f"scale_{f}" for f in self.features]].to_numpy(dtype=float),
            "knn": t["scale_knn"].to_numpy(dtype=float),
            "lo": t["scale_lo"].to_numpy(dtype=float),
            "hi": t["scale_hi"].to_numpy(dtype=float),
        }

    def half_width(self, X, level: float, distance=None, genes=None) -> np.ndarray:
        """``q * sigma``, cells x genes, at ``level`` (one of :data:`LEVELS`)."""
        if q_column(level) not in self.table.columns:
            raise InputError(f"interval level {level} is not one of the stored {list(LEVELS)}")
        t = self.table if genes is None else self.table.iloc[genes]
        q = t[q_column(level)].to_numpy(dtype=float)
        return half_width(self.params(genes), q, X, distance)


def half_width(params: dict, q: np.ndarray, X: np.ndarray, distance=None) -> np.ndarray:
    """``q * sigma``, cells x genes: the interval's half width for the difficulty model
    ``params`` and the genes' quantiles ``q`` (an undefined ``inf * 0``, a constant gene at
    a high level, is an unbounded interval)."""
    with np.errstate(invalid="ignore"):
        hw = scale_values(params, X, distance) * q
    return np.where(np.isnan(hw), np.inf, hw)


def clipped_bounds(low, high, half, limits: tuple[float, float]):
    """``(low - half, high + half)``, each clipped to ``limits`` (the possible
    expression values): the interval bounds, in training's CV and when predicting."""
    lo, hi = limits
    return np.clip(low - half, lo, hi), np.clip(high + half, lo, hi)


def chunk_bounds(pred, half, beyond, raw, limits: tuple[float, float]):
    """``(lower, upper)`` (genes x cells, float64) of a predicted chunk ``pred`` (genes x
    cells) with half-widths ``half``: :func:`clipped_bounds`, and for the cells ``beyond``
    the training range (boolean per cell) an interval that also spans their extrapolated
    predictions ``raw`` (genes x those cells) and, where the clip to ``limits`` cuts it,
    extends on the other side to keep its width (one fused pass:
    :mod:`ephys2expr.model.bounds_kernel`)."""
    from ephys2expr.model.bounds_kernel import bounds_kernel

    far_pos = np.full(pred.shape[1], -1, dtype=np.int64)
    far_pos[beyond] = np.arange(int(beyond.sum()))
    raw = np.ascontiguousarray(raw, dtype=float) if raw is not None else np.empty((0, 0))
    lower = np.empty(pred.shape, dtype=float)
    upper = np.empty(pred.shape, dtype=float)
    half = np.ascontiguousarray(half, dtype=float)
    bounds_kernel(np.ascontiguousarray(pred), half, far_pos, raw, *map(float, limits), lower, upper)
    return lower, upper


def chunk_bounds_numpy(pred, half, beyond, raw, limits: tuple[float, float]):
    """:func:`chunk_bounds` in numpy: the reference the kernel is tested against bit for bit
    (``tests/test_intervals.py``) and timed against (``benchmarks/bench_bounds.py``)."""
    lo, hi = limits
    pred = pred.astype(float)
    low, high = pred.copy(), pred.copy()
    low[:, beyond] = np.minimum(low[:, beyond], raw)
    high[:, beyond] = np.maximum(high[:, beyond], raw)
    lower, upper = clipped_bounds(low, high, half, limits)
    width = (high - low + 2 * half)[:, beyond]
    lower[:, beyond] = np.maximum(np.minimum(lower[:, beyond], upper[:, beyond] - width), lo)
    upper[:, beyond] = np.minimum(np.maximum(upper[:, beyond], lower[:, beyond] + width), hi)
    return lower, upper


def _with_params(table: pd.DataFrame, params: dict, features) -> pd.DataFrame:
    table = table.copy()
    table["scale_intercept"] = params["intercept"]
    for j, f in enumerate(features):
        table[f"scale_{f}"] = params["coef"][:, j]
    table["scale_knn"] = params["knn"]
    table["scale_lo"] = params["lo"]
    table["scale_hi"] = params["hi"]
    return table


__all__ = [
    "GeneIntervals",
    "LEVELS",
    "METHODS",
    "chunk_bounds",
    "chunk_bounds_numpy",
    "clipped_bounds",
    "conformal_quantile",
    "fit_scale",
    "half_width",
    "q_column",
    "scale_values",
]
