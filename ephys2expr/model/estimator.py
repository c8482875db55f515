"""The per-gene estimator: :class:`MultiGeneElasticNet` (lasso, elastic net or ridge for
many genes at once, alpha fixed, per gene, or chosen by inner cross-validation).

The solutions along the alpha path come from :mod:`ephys2expr.model.path` (objectives
identical to scikit-learn's, solved exactly for all genes at once).

Standardisation (:class:`MultiGeneElasticNet` with ``standardize=True``) uses the unweighted
mean and population standard deviation of the rows it is fitted on, exactly like
``sklearn.preprocessing.StandardScaler`` without sample weights: each cell type counts once
when deciding the scale the penalty acts on; weights only enter the loss.
"""

from __future__ import annotations

import logging

import numpy as np

from ephys2expr.errors import InputError
from ephys2expr.model.path import (
    PENALTIES,
    _design,
    _weights,
    elastic_net_path,
    inner_folds,
    path_validation_sse,
)
from ephys2expr.model.store import centred_terms, linear_predict
from ephys2expr.scaling import scaler_stats

log = logging.getLogger("ephys2expr")


class MultiGeneElasticNet:
    """Lasso / elastic net / ridge for many genes at once, optionally with per-gene alpha.

    The settings that ``params.yaml train`` holds have no default here (each setting is
    defined once, in :class:`~ephys2expr.train.settings.TrainSettings`, whose
    ``estimator()`` builds this object); the inner-CV ones are needed for ``"auto"`` only.

    Parameters
    ----------
    penalty : {"lasso", "elasticnet", "ridge"}
    alpha : float, "auto" or array of shape (n_genes,)
        Fixed penalty (scikit-learn units), ``"auto"`` = chosen per gene by inner k-fold
        cross-validation over ``alphas`` (smallest pooled out-of-fold squared error; ties go
        to the larger alpha), or one alpha per gene.
    l1_ratio : float, optional
        Elastic-net mixing, needed for ``"elasticnet"`` only (lasso is 1, ridge 0).
    alphas : array-like, optional
        The path searched by ``"auto"`` (needed then).
    inner_cv : int, optional
        Folds of the inner cross-validation (needed for ``"auto"``).
    random_state : int, optional
        Seed of the inner fold split (needed for ``"auto"``).
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
        penalty: str,
        alpha,
        l1_ratio: float | None = None,
        *,
        alphas=None,
        inner_cv: int | None = None,
        random_state: int | None = None,
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
        fixed = {"lasso": 1.0, "ridge": 0.0}
        if self.penalty in fixed:
            return fixed[self.penalty]
        ratio = self.l1_ratio
        if ratio is None or not (isinstance(ratio, int | float) and 0.0 <= ratio <= 1.0):
            raise InputError(f"elasticnet needs l1_ratio in [0, 1], not {ratio!r}")
        return float(ratio)

    def _scale(self, X):
        if self.standardize:
            return scaler_stats(X)
        return np.zeros(X.shape[1]), np.ones(X.shape[1])

    def _path(self, X, Y, alphas, w, coef_init=None):
        mean, scale = self._scale(X)
        res = elastic_net_path(
            (X - mean) / scale,
            Y,
            alphas,
            penalty=self.penalty,
            l1_ratio=self._l1_ratio(),
            sample_weight=w,
            tol=self.tol,
            max_iter=self.max_iter,
            coef_init=coef_init,
        )
        return res, mean, scale

    def _inner_cv_mse(self, X, Y, w, alphas, groups=None):
        """Pooled (weighted) out-of-fold MSE per gene and alpha, shape (n_genes, n_alphas)."""
        sse = np.zeros((Y.shape[1], len(alphas)))
        for tr, va in inner_folds(X.shape[0], self.inner_cv, self.random_state, groups):
            mean, scale = self._scale(X[tr])
            # validation rows scaled with the training part's statistics
            fold_sse, _, _ = path_validation_sse(
                (X[tr] - mean) / scale,
                Y[tr],
                (X[va] - mean) / scale,
                Y[va],
                alphas,
                penalty=self.penalty,
                l1_ratio=self._l1_ratio(),
                sample_weight=w[tr],
                val_weight=w[va],
                tol=self.tol,
                max_iter=self.max_iter,
            )
            sse += fold_sse
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
        auto, alphas, a = self._alpha_plan(n_genes)
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

    def _alpha_plan(self, n_genes: int):
        """Check ``alpha`` and set the per-gene alpha arrays: ``(auto, alphas, a)``, the
        inner-CV grid (``alpha: auto``) or each gene's fixed alpha (the other None)."""
        alphas = a = None
        auto = isinstance(self.alpha, str)
        if auto and self.alpha != "auto":
            raise InputError(f"alpha must be a number, 'auto' or one per gene, not {self.alpha!r}")
        if auto:
            missing = [
                k for k in ("alphas", "inner_cv", "random_state") if getattr(self, k) is None
            ]
            if missing:
                raise InputError(
                    f"alpha 'auto' needs {', '.join(missing)} (TrainSettings.estimator)"
                )
            alphas = np.sort(np.asarray(self.alphas, dtype=float))[::-1]
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
        return auto, alphas, a

    def predict(self, X, clip: bool = True) -> np.ndarray:
        """Predictions, shape (n_samples, n_genes), for features in original units.

        Through :func:`~ephys2expr.model.store.linear_predict`, the one prediction formula
        (the model store predicts with the same terms), so out-of-fold predictions in CV are
        computed exactly as predictions of new cells are: clipped to the possible log2
        expressions unless ``clip=False`` (the raw linear values).
        """
        X = np.asarray(X, dtype=float)
        terms = centred_terms(self.coef_, self.intercept_, self.mean_)
        return linear_predict(*terms, X, clip=clip).T


__all__ = ["MultiGeneElasticNet"]
