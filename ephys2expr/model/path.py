"""The alpha path: exact penalised linear regression for many genes over one shared design.

Every gene is its own regression ``y_g ~ X``, but all genes share ``X`` (cell types x
features: about 20-50 rows and 11-15 columns). The cost of a per-gene scikit-learn loop is
Python and setup overhead, not arithmetic, so each fit is reduced to the shared Gram matrix
``X'WX/S`` (p x p) and the per-gene vector ``X'Wy/S`` (p), computed for all genes with one
matrix product; the lasso / elastic net is then solved exactly for all genes in parallel in
numba (:mod:`ephys2expr.model.kernels`), ridge in closed form from one eigendecomposition.

Objectives (identical to scikit-learn, so the two can be compared coefficient by coefficient;
``S`` is the sum of the sample weights, ``n`` when there are none)::

    lasso / elasticnet: 1/(2S) sum_i w_i (y_i - x_i b - b0)^2
                        + alpha * l1_ratio * |b|_1 + 0.5 * alpha * (1 - l1_ratio) * |b|^2
    ridge:              sum_i w_i (y_i - x_i b - b0)^2 + alpha * |b|^2

(``sklearn.linear_model.ElasticNet`` rescales weights to sum to ``n``, which gives the first
line; ``Ridge`` does not rescale, which gives the second.) The intercept is not penalised and
is handled by weighted centring. Also here: the alpha grid, the standardisation statistics
and the inner folds the estimator (:mod:`ephys2expr.model.estimator`) uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut, LeaveOneOut

from ephys2expr.errors import InputError
from ephys2expr.model.kernels import cd_path_kernel, path_sse_kernel

PENALTIES = ("lasso", "elasticnet", "ridge")


# --------------------------------------------------------------------------------------
# path function (no standardisation: works on the X it is given)
# --------------------------------------------------------------------------------------


@dataclass
class PathResult:
    """Solutions along an alpha path for many genes.

    Attributes
    ----------
    coefs : ndarray, shape (n_genes, n_alphas, n_features)
    intercepts : ndarray, shape (n_genes, n_alphas)
    n_iter : ndarray, shape (n_genes,)
        Coordinate-descent sweeps summed over the path (0 for ridge).
    converged : ndarray of bool, shape (n_genes,)
    """

    coefs: np.ndarray
    intercepts: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray


def _design(X, Y) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (rows x features) and ``Y`` (rows x genes) as float arrays with the same rows."""
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.ndim != 2 or Y.shape[0] != X.shape[0]:
        raise InputError(f"X {X.shape} and Y {Y.shape} do not have the same rows")
    return X, Y


def _weights(sample_weight, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight, dtype=float)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise InputError(f"sample_weight must be {n} finite non-negative numbers, not all zero")
    return w


def penalty_strengths(penalty: str, alphas: np.ndarray, l1_ratio: float, wsum: float):
    """(l1, l2) in the normalised objective 1/(2S)|r|^2 + l1|b|_1 + l2/2 |b|^2."""
    if penalty == "lasso":
        return alphas, np.zeros_like(alphas)
    if penalty == "elasticnet":
        return alphas * l1_ratio, alphas * (1.0 - l1_ratio)
    if penalty == "ridge":
        # sum w r^2 + alpha |b|^2  ==  2S * [1/(2S) sum w r^2 + (alpha/S)/2 |b|^2]
        return np.zeros_like(alphas), alphas / wsum
    raise InputError(f"penalty must be one of {PENALTIES}, not {penalty!r}")


def _check_alphas(alphas, n_genes: int, penalty: str, l1_ratio: float) -> np.ndarray:
    """``alphas`` as a (1 or n_genes, n_alphas) array, checked."""
    alphas = np.asarray(alphas, dtype=float)
    alphas2 = alphas[None, :] if alphas.ndim == 1 else alphas
    if alphas2.ndim != 2 or alphas2.shape[0] not in (1, n_genes):
        raise InputError(f"alphas must have shape (n_alphas,) or ({n_genes}, n_alphas)")
    if np.any(~np.isfinite(alphas2)) or np.any(alphas2 < 0):
        raise InputError("alphas must be finite and non-negative")
    if penalty == "ridge" and np.any(alphas2 <= 0):
        raise InputError("ridge needs alpha > 0")
    if penalty == "elasticnet" and not 0.0 <= l1_ratio <= 1.0:
        raise InputError(f"l1_ratio must be in [0, 1], not {l1_ratio}")
    return alphas2


@dataclass
class _Problem:
    """Everything the solvers need from (X, Y, weights): weighted means, the shared Gram
    matrix ``X'WX/S`` and the per-gene ``X'Wy/S`` of the centred data."""

    xbar: np.ndarray
    ybar: np.ndarray
    gram: np.ndarray
    xty: np.ndarray
    w: np.ndarray
    wsum: float

    @classmethod
    def of(cls, X, Y, sample_weight) -> _Problem:
        w = _weights(sample_weight, X.shape[0])
        wsum = w.sum()
        xbar = w @ X / wsum
        ybar = w @ Y / wsum
        Xc = X - xbar
        WXc = Xc * w[:, None]
        gram = np.ascontiguousarray(Xc.T @ WXc / wsum)
        # Xc'W1 = 0, so Xc'W(Y - ybar) = Xc'WY: no centred copy of Y needed
        xty = np.ascontiguousarray((Y.T @ WXc) / wsum)
        return cls(xbar, ybar, gram, xty, w, wsum)

    def yscale(self, Y) -> np.ndarray:
        return np.sqrt(np.maximum(self.w @ (Y - self.ybar) ** 2 / self.wsum, 0.0))

    def ridge(self, l2) -> np.ndarray:
        """Closed-form ridge coefficients (G, A, p) from one eigendecomposition."""
        evals, evecs = np.linalg.eigh(self.gram)
        evals = np.clip(evals, 0.0, None)
        proj = self.xty @ evecs  # (G, p)
        return (proj[:, None, :] / (evals[None, None, :] + l2[:, :, None])) @ evecs.T


def elastic_net_path(
    X,
    Y,
    alphas,
    *,
    penalty: str,
    l1_ratio: float,
    sample_weight=None,
    tol: float = 1e-10,
    max_iter: int = 100_000,
    coef_init=None,
) -> PathResult:
    """Fit every column of ``Y`` on the shared ``X`` for each alpha of a path.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)
        Used as given (standardise beforehand if wanted). An intercept is always fitted.
    Y : array-like, shape (n_samples, n_genes)
    alphas : array-like, shape (n_alphas,) or (n_genes, n_alphas)
        Penalty strengths in scikit-learn's units for ``penalty``; give them in decreasing
        order (warm starts run along the path). A 2-D array gives each gene its own path.
    penalty : {"lasso", "elasticnet", "ridge"}
    l1_ratio : float
        Elastic-net mixing (ignored for lasso = 1 and ridge).
    sample_weight : array-like, shape (n_samples,), optional
    tol : float
        Coordinate descent stops when the largest change of any fitted-value contribution
        in a sweep is below ``tol`` times the gene's (weighted) standard deviation - unless
        the active-set polish has already found the exact optimum, which is the usual case.
    max_iter : int
        Maximum coordinate-descent sweeps per alpha.
    coef_init : array-like, shape (n_genes, n_features), optional
        Warm start for the first alpha.

    Returns
    -------
    PathResult
    """
    X, Y = _design(X, Y)
    p = X.shape[1]
    n_genes = Y.shape[1]
    alphas2 = _check_alphas(alphas, n_genes, penalty, l1_ratio)
    prob = _Problem.of(X, Y, sample_weight)
    l1, l2 = penalty_strengths(penalty, alphas2, l1_ratio, prob.wsum)
    n_iter = np.zeros(n_genes, dtype=np.int64)
    if penalty == "ridge":
        coefs = prob.ridge(l2)
        converged = np.ones(n_genes, dtype=bool)
    else:
        if coef_init is None:
            init = np.zeros((0, p))
        else:
            init = np.ascontiguousarray(np.asarray(coef_init, dtype=float))
            if init.shape != (n_genes, p):
                raise InputError(f"coef_init must have shape ({n_genes}, {p})")
        coefs = np.empty((n_genes, alphas2.shape[1], p))
        converged = np.zeros(n_genes, dtype=np.bool_)
        cd_path_kernel(
            prob.gram,
            prob.xty,
            prob.yscale(Y),
            np.ascontiguousarray(l1),
            np.ascontiguousarray(l2),
            init,
            float(tol),
            int(max_iter),
            coefs,
            n_iter,
            converged,
        )
    intercepts = prob.ybar[:, None] - coefs @ prob.xbar
    return PathResult(coefs=coefs, intercepts=intercepts, n_iter=n_iter, converged=converged)


def path_validation_sse(
    X,
    Y,
    X_val,
    Y_val,
    alphas,
    *,
    penalty: str,
    l1_ratio: float,
    sample_weight=None,
    val_weight=None,
    tol: float = 1e-10,
    max_iter: int = 100_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted validation error of the path fitted on (``X``, ``Y``), without the path.

    What an inner cross-validation fold needs: for every gene and alpha, the weighted sum
    of squared errors of :func:`elastic_net_path`'s solution on the rows (``X_val``,
    ``Y_val``). The solutions themselves are not returned, which saves writing and reading
    a (genes x alphas x features) array per fold.

    Parameters
    ----------
    X, Y, alphas, penalty, l1_ratio, sample_weight, tol, max_iter
        As in :func:`elastic_net_path` (no warm start).
    X_val : array-like, shape (n_val, n_features)
        Validation rows, on the same scale as ``X``.
    Y_val : array-like, shape (n_val, n_genes)
    val_weight : array-like, shape (n_val,), optional

    Returns
    -------
    sse : ndarray, shape (n_genes, n_alphas)
        ``sum_i w_i (y_i - x_i b - b0)^2`` over the validation rows.
    n_iter, converged : ndarray, shape (n_genes,)
        As in :class:`PathResult`.
    """
    X, Y = _design(X, Y)
    X_val, Y_val = _design(X_val, Y_val)
    n_genes = Y.shape[1]
    if X_val.shape[1] != X.shape[1] or Y_val.shape[1] != n_genes:
        raise InputError(f"validation X {X_val.shape} / Y {Y_val.shape} do not match X / Y")
    alphas2 = _check_alphas(alphas, n_genes, penalty, l1_ratio)
    prob = _Problem.of(X, Y, sample_weight)
    l1, l2 = penalty_strengths(penalty, alphas2, l1_ratio, prob.wsum)
    wv = _weights(val_weight, X_val.shape[0])
    # validation rows centred on the training means: residual = xv'b - yv (b0 = ybar - xbar'b)
    xv = X_val - prob.xbar
    yv = Y_val - prob.ybar
    vgram = np.ascontiguousarray(xv.T @ (xv * wv[:, None]))
    vxty = np.ascontiguousarray(yv.T @ (xv * wv[:, None]))
    vyy = wv @ yv**2
    n_iter = np.zeros(n_genes, dtype=np.int64)
    if penalty == "ridge":
        coefs = prob.ridge(l2)
        sse = (
            np.einsum("gap,pq,gaq->ga", coefs, vgram, coefs, optimize=True)
            - 2.0 * np.einsum("gap,gp->ga", coefs, vxty)
            + vyy[:, None]
        )
        converged = np.ones(n_genes, dtype=bool)
    else:
        sse = np.zeros((n_genes, alphas2.shape[1]))
        converged = np.zeros(n_genes, dtype=np.bool_)
        path_sse_kernel(
            prob.gram,
            prob.xty,
            prob.yscale(Y),
            np.ascontiguousarray(l1),
            np.ascontiguousarray(l2),
            float(tol),
            int(max_iter),
            vgram,
            vxty,
            vyy,
            sse,
            n_iter,
            converged,
        )
    return sse, n_iter, converged


def alpha_grid(alpha_max: float, alpha_min: float, n_alphas: int) -> np.ndarray:
    """Log-spaced alphas from ``alpha_max`` down to ``alpha_min`` (the order warm starts need)."""
    if not (alpha_max > 0 and alpha_min > 0 and n_alphas >= 1):
        raise InputError("alpha path needs alpha_max > 0, alpha_min > 0 and n_alphas >= 1")
    if alpha_min > alpha_max:
        raise InputError(f"alpha_min {alpha_min} is larger than alpha_max {alpha_max}")
    return np.geomspace(alpha_max, alpha_min, n_alphas)


def inner_folds(
    n: int, n_splits: int, seed: int, groups=None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled k-fold on ``n`` rows (leave-one-out when ``n < n_splits``).

    With ``groups`` (one label per row, e.g. the animal of each cell) the folds keep every
    group whole - no group is in both an inner training and validation part:
    :class:`~sklearn.model_selection.GroupKFold` (leave-one-group-out with fewer groups
    than ``n_splits``).
    """
    if n < 2:
        raise InputError(f"need at least 2 training rows for inner cross-validation, got {n}")
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != n:
            raise InputError(f"groups has {len(groups)} labels for {n} rows")
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise InputError(f"inner cross-validation needs at least 2 groups, got {n_groups}")
        split = GroupKFold(n_splits) if n_groups >= n_splits else LeaveOneGroupOut()
        return list(split.split(np.zeros(n), groups=groups))
    if n_splits >= n:
        return list(LeaveOneOut().split(np.zeros(n)))
    return list(KFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(n)))


__all__ = [
    "PENALTIES",
    "PathResult",
    "alpha_grid",
    "elastic_net_path",
    "inner_folds",
    "path_validation_sse",
]
