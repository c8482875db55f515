"""Penalised linear regression for many genes at once over one shared, small design matrix.

Every gene is its own regression ``y_g ~ X``, but all genes share ``X`` (cell types x
features: about 20-50 rows and 11-15 columns). The cost of a per-gene scikit-learn loop is
Python and setup overhead, not arithmetic, so each fit is reduced to the shared Gram matrix
``X'WX/S`` (p x p) and the per-gene vector ``X'Wy/S`` (p), computed for all genes with one
matrix product; the lasso / elastic net is then solved exactly for all genes in parallel in
numba (:mod:`ephys2expr.model._kernels`), ridge in closed form from one eigendecomposition.

Objectives (identical to scikit-learn, so the two can be compared coefficient by coefficient;
``S`` is the sum of the sample weights, ``n`` when there are none)::

    lasso / elasticnet: 1/(2S) sum_i w_i (y_i - x_i b - b0)^2
                        + alpha * l1_ratio * |b|_1 + 0.5 * alpha * (1 - l1_ratio) * |b|^2
    ridge:              sum_i w_i (y_i - x_i b - b0)^2 + alpha * |b|^2

(``sklearn.linear_model.ElasticNet`` rescales weights to sum to ``n``, which gives the first
line; ``Ridge`` does not rescale, which gives the second.) The intercept is not penalised and
is handled by weighted centring.

Standardisation (:class:`MultiGeneElasticNet` with ``standardize=True``) uses the unweighted
mean and population standard deviation of the rows it is fitted on, exactly like
``sklearn.preprocessing.StandardScaler`` without sample weights: each cell type counts once
when deciding the scale the penalty acts on; weights only enter the loss.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut, LeaveOneOut

from ephys2expr.errors import InputError
from ephys2expr.model._kernels import cd_path_kernel

log = logging.getLogger("ephys2expr")

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


def _penalty_strengths(penalty: str, alphas: np.ndarray, l1_ratio: float, wsum: float):
    """(l1, l2) in the normalised objective 1/(2S)|r|^2 + l1|b|_1 + l2/2 |b|^2."""
    if penalty == "lasso":
        return alphas, np.zeros_like(alphas)
    if penalty == "elasticnet":
        return alphas * l1_ratio, alphas * (1.0 - l1_ratio)
    if penalty == "ridge":
        # sum w r^2 + alpha |b|^2  ==  2S * [1/(2S) sum w r^2 + (alpha/S)/2 |b|^2]
        return np.zeros_like(alphas), alphas / wsum
    raise InputError(f"penalty must be one of {PENALTIES}, not {penalty!r}")


def elastic_net_path(
    X,
    Y,
    alphas,
    *,
    penalty: str = "lasso",
    l1_ratio: float = 1.0,
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
    n, p = X.shape
    n_genes = Y.shape[1]
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
    w = _weights(sample_weight, n)
    wsum = w.sum()
    xbar = w @ X / wsum
    ybar = w @ Y / wsum
    Xc = X - xbar
    WXc = Xc * w[:, None]
    gram = Xc.T @ WXc / wsum
    # Xc'W1 = 0, so Xc'W(Y - ybar) = Xc'WY: no centred copy of Y needed
    xty = np.ascontiguousarray((Y.T @ WXc) / wsum)
    l1, l2 = _penalty_strengths(penalty, alphas2, l1_ratio, wsum)
    n_alpha = alphas2.shape[1]
    if penalty == "ridge":
        evals, evecs = np.linalg.eigh(gram)
        evals = np.clip(evals, 0.0, None)
        proj = xty @ evecs  # (G, p)
        coefs = (proj[:, None, :] / (evals[None, None, :] + l2[:, :, None])) @ evecs.T
        n_iter = np.zeros(n_genes, dtype=np.int64)
        converged = np.ones(n_genes, dtype=bool)
    else:
        yscale = np.sqrt(np.maximum(w @ (Y - ybar) ** 2 / wsum, 0.0))
        if coef_init is None:
            init = np.zeros((0, p))
        else:
            init = np.ascontiguousarray(np.asarray(coef_init, dtype=float))
            if init.shape != (n_genes, p):
                raise InputError(f"coef_init must have shape ({n_genes}, {p})")
        coefs = np.empty((n_genes, n_alpha, p))
        n_iter = np.zeros(n_genes, dtype=np.int64)
        converged = np.zeros(n_genes, dtype=np.bool_)
        cd_path_kernel(
            np.ascontiguousarray(gram), xty, yscale, np.ascontiguousarray(l1),
            np.ascontiguousarray(l2), init, float(tol), int(max_iter), coefs, n_iter, converged,
        )  # fmt: skip
    intercepts = ybar[:, None] - coefs @ xbar
    return PathResult(coefs=coefs, intercepts=intercepts, n_iter=n_iter, converged=converged)


# --------------------------------------------------------------------------------------
# estimator
# --------------------------------------------------------------------------------------


def alpha_grid(alpha_max: float, alpha_min: float, n_alphas: int) -> np.ndarray:
    """Log-spaced alphas from ``alpha_max`` down to ``alpha_min`` (the order warm starts need)."""
    if not (alpha_max > 0 and alpha_min > 0 and n_alphas >= 1):
        raise InputError("alpha path needs alpha_max > 0, alpha_min > 0 and n_alphas >= 1")
    if alpha_min > alpha_max:
        raise InputError(f"alpha_min {alpha_min} is larger than alpha_max {alpha_max}")
    return np.geomspace(alpha_max, alpha_min, n_alphas)


def standardize_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unweighted mean and population std (zero std -> 1, as StandardScaler)."""
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    # StandardScaler treats a near-constant column as constant (scale 1)
    scale = np.where(scale < 10 * np.finfo(float).eps * np.maximum(np.abs(mean), 1.0), 1.0, scale)
    return mean, scale


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


class MultiGeneElasticNet:
    """Lasso / elastic net / ridge for many genes at once, optionally with per-gene alpha.

    Parameters
    ----------
    penalty : {"lasso", "elasticnet", "ridge"}
    alpha : float, "auto" or array of shape (n_genes,)
        Fixed penalty (scikit-learn units), ``"auto"`` = chosen per gene by inner k-fold
        cross-validation over ``alphas`` (smallest pooled out-of-fold squared error; ties go
        to the larger alpha), or one alpha per gene.
    l1_ratio : float
        Elastic-net mixing; 1 for lasso, ignored for ridge.
    alphas : array-like, optional
        The path for ``"auto"``; default ``alpha_grid(10, 1e-3, 30)``.
    inner_cv : int
        Folds of the inner cross-validation for ``"auto"``.
    random_state : int
        Seed of the inner fold split.
    standardize : bool
        Standardise features with the statistics of the rows passed to ``fit`` (and, for
        ``"auto"``, of each inner training part separately).
    tol, max_iter : see :func:`elastic_net_path`.
    chunk_size : int
        Genes per block (bounds memory; results do not depend on it).

    Attributes
    ----------
    coef_ : ndarray, shape (n_genes, n_features)
        Coefficients in the original feature units.
    intercept_ : ndarray, shape (n_genes,)
    coef_std_, intercept_std_ : coefficients and intercept on the standardised scale.
    alpha_ : ndarray, shape (n_genes,)
        The alpha used for each gene.
    alpha_index_ : ndarray of int, shape (n_genes,)
        Position of ``alpha_`` in ``alphas_`` (``"auto"`` only, else -1).
    alphas_ : ndarray
        The path searched (``"auto"``) or the distinct alphas used.
    cv_mse_ : ndarray, shape (n_genes, n_alphas)
        Inner-CV mean squared error per alpha (``"auto"`` only).
    mean_, scale_ : ndarray, shape (n_features,)
        Standardisation statistics (0 and 1 when ``standardize=False``).
    n_iter_ : ndarray, shape (n_genes,)
    converged_ : ndarray of bool, shape (n_genes,)
    """

    def __init__(
        self,
        penalty: str = "lasso",
        alpha="auto",
        l1_ratio: float = 1.0,
        *,
        alphas=None,
        inner_cv: int = 5,
        random_state: int = 0,
        standardize: bool = True,
        tol: float = 1e-10,
        max_iter: int = 100_000,
        chunk_size: int = 8192,
    ):
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.alphas = alphas
        self.inner_cv = inner_cv
        self.random_state = random_state
        self.standardize = standardize
        self.tol = tol
        self.max_iter = max_iter
        self.chunk_size = chunk_size

    # ---- helpers -----------------------------------------------------------------------
    def _l1_ratio(self) -> float:
        if self.penalty not in PENALTIES:
            raise InputError(f"penalty must be one of {PENALTIES}, not {self.penalty!r}")
        return {"lasso": 1.0, "ridge": 0.0}.get(self.penalty, float(self.l1_ratio))

    def _scale(self, X):
        if self.standardize:
            return standardize_stats(X)
        return np.zeros(X.shape[1]), np.ones(X.shape[1])

    def _path(self, X, Y, alphas, w, coef_init=None):
        mean, scale = self._scale(X)
        res = elastic_net_path(
            (X - mean) / scale, Y, alphas, penalty=self.penalty, l1_ratio=self._l1_ratio(),
            sample_weight=w, tol=self.tol, max_iter=self.max_iter, coef_init=coef_init,
        )  # fmt: skip
        return res, mean, scale

    def _inner_cv_mse(self, X, Y, w, alphas, groups=None):
        """Pooled (weighted) out-of-fold MSE per gene and alpha, shape (n_genes, n_alphas)."""
        sse = np.zeros((Y.shape[1], len(alphas)))
        for tr, va in inner_folds(X.shape[0], self.inner_cv, self.random_state, groups):
            res, mean, scale = self._path(X[tr], Y[tr], alphas, w[tr])
            Xv = (X[va] - mean) / scale  # validation rows scaled with training statistics
            pred = res.coefs @ Xv.T + res.intercepts[:, :, None]  # (G, A, n_va)
            err = pred - Y[va].T[:, None, :]
            sse += (err**2) @ w[va]
        return sse / w.sum()

    # ---- API ---------------------------------------------------------------------------
    def fit(self, X, Y, sample_weight=None, coef_init=None, groups=None):
        """Fit all genes.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        Y : array-like, shape (n_samples, n_genes)
        sample_weight : array-like, shape (n_samples,), optional
        coef_init : array-like, shape (n_genes, n_features), optional
            Warm start on the standardised scale (fixed or per-gene alpha only; it changes
            the work needed, not the solution).
        groups : array-like, shape (n_samples,), optional
            Group of each row (e.g. animal): the inner CV of ``"auto"`` keeps groups whole
            (:func:`inner_folds`); ignored for a fixed alpha.

        Returns
        -------
        self
        """
        X, Y = _design(X, Y)
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
            raise InputError("X and Y must not contain NaN or infinity")
        n, p = X.shape
        n_genes = Y.shape[1]
        w = _weights(sample_weight, n)
        self._l1_ratio()
        if coef_init is not None:
            coef_init = np.asarray(coef_init, dtype=float)
            if coef_init.shape != (n_genes, p):
                raise InputError(f"coef_init must have shape ({n_genes}, {p})")
        auto = isinstance(self.alpha, str)
        if auto and self.alpha != "auto":
            raise InputError(f"alpha must be a number, 'auto' or one per gene, not {self.alpha!r}")
        if auto:
            alphas = alpha_grid(10.0, 1e-3, 30) if self.alphas is None else self.alphas
            alphas = np.sort(np.asarray(alphas, dtype=float))[::-1]
            self.alphas_ = alphas
            self.cv_mse_ = np.empty((n_genes, len(alphas)))
            self.alpha_index_ = np.empty(n_genes, dtype=np.int64)
        else:
            a = np.asarray(self.alpha, dtype=float)
            if a.ndim == 0:
                a = np.full(n_genes, float(a))
            if a.shape != (n_genes,):
                raise InputError(f"alpha has {a.size} values for {n_genes} genes")
            self.alphas_ = np.unique(a)[::-1]
            self.alpha_index_ = np.full(n_genes, -1, dtype=np.int64)
        self.coef_std_ = np.empty((n_genes, p))
        self.intercept_std_ = np.empty(n_genes)
        self.alpha_ = np.empty(n_genes)
        self.n_iter_ = np.zeros(n_genes, dtype=np.int64)
        self.converged_ = np.ones(n_genes, dtype=bool)
        mean, scale = self._scale(X)
        for start in range(0, n_genes, self.chunk_size):
            sl = slice(start, min(start + self.chunk_size, n_genes))
            Yc = Y[:, sl]
            if auto:
                mse = self._inner_cv_mse(X, Yc, w, alphas, groups)
                best = np.argmin(mse, axis=1)  # first minimum = largest alpha on ties
                # refit each gene at its own alpha only (a unique optimum: the same as the
                # path's point, at a fraction of the cost of the whole path)
                res, _, _ = self._path(X, Yc, alphas[best][:, None], w)
                self.coef_std_[sl] = res.coefs[:, 0]
                self.intercept_std_[sl] = res.intercepts[:, 0]
                self.alpha_[sl] = alphas[best]
                self.alpha_index_[sl] = best
                self.cv_mse_[sl] = mse
            else:
                init = None if coef_init is None else coef_init[sl]
                res, _, _ = self._path(X, Yc, a[sl, None], w, init)
                self.coef_std_[sl] = res.coefs[:, 0]
                self.intercept_std_[sl] = res.intercepts[:, 0]
                self.alpha_[sl] = a[sl]
            self.n_iter_[sl] = res.n_iter
            self.converged_[sl] = res.converged
        if not self.converged_.all():
            log.warning("coordinate descent hit max_iter for %d genes", (~self.converged_).sum())
        self.mean_, self.scale_ = mean, scale
        self.coef_ = self.coef_std_ / scale
        self.intercept_ = self.intercept_std_ - self.coef_ @ mean
        return self

    def predict(self, X) -> np.ndarray:
        """Predictions, shape (n_samples, n_genes), for features in original units."""
        X = np.asarray(X, dtype=float)
        return X @ self.coef_.T + self.intercept_


__all__ = [
    "PENALTIES",
    "MultiGeneElasticNet",
    "PathResult",
    "alpha_grid",
    "elastic_net_path",
    "inner_folds",
    "standardize_stats",
]
