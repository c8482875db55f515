"""Nested cross-validation of the per-gene models: out-of-fold predictions per outer fold.

Every outer fold standardises its features with the statistics of its own training rows
(inside :class:`~ephys2expr.model.estimator.MultiGeneElasticNet`), and with ``alpha: auto``
the alpha of each gene is chosen by an inner k-fold on the outer training rows only - the
held-out cell type never influences its own prediction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from ephys2expr.model.store import clip_expression
from ephys2expr.train.settings import TrainSettings

log = logging.getLogger("ephys2expr")


@dataclass
class CVResult:
    """Out-of-fold predictions and the choices made in each outer fold.

    Attributes
    ----------
    oof : ndarray, shape (n_types, n_genes)
        Out-of-fold predictions as written for new cells (clipped to the possible log2
        expressions: :func:`~ephys2expr.model.store.clip_expression`).
    oof_linear : ndarray, shape (n_types, n_genes)
        The same before clipping: the linear model's values, whose r2 is the permutation
        null's test statistic (the null's fast kernels compute the linear fits' errors).
    fold_alpha : ndarray, shape (n_folds, n_genes)
        The alpha each fold used for each gene (chosen by the inner CV for ``auto``).
    fold_nonzero : ndarray, shape (n_folds, n_genes)
    seconds : float
    fold_inner_mse : ndarray, shape (n_folds, n_genes) or None
        With ``inner_score``: each fold's inner-CV error at the alpha it chose (what
        ``model: best`` compares the kinds with, never the outer score).
    """

    oof: np.ndarray
    oof_linear: np.ndarray
    fold_alpha: np.ndarray
    fold_nonzero: np.ndarray
    seconds: float
    fold_inner_mse: np.ndarray | None = None


def log_progress(what: str, done: int, total: int, start: float) -> None:
    """One log line: ``what done/total`` with elapsed time and a linear estimate of the rest."""
    elapsed = time.perf_counter() - start
    eta = elapsed / done * (total - done) if done else float("nan")
    log.info("%s %d/%d (%.1f s elapsed, about %.0f s left)", what, done, total, elapsed, eta)


def nested_cv(
    X,
    Y,
    folds,
    settings: TrainSettings,
    weights=None,
    fold_alpha=None,
    verbose: bool = True,
    groups=None,
    inner_score: bool = False,
) -> CVResult:
    """Out-of-fold predictions of the full procedure (scaling + alpha choice + fit) per fold.

    Parameters
    ----------
    X : ndarray, shape (n_types, n_features)
    Y : ndarray, shape (n_types, n_genes)
    folds : list of (train, test) index arrays
    settings : TrainSettings
    weights : ndarray, shape (n_types,), optional
    fold_alpha : ndarray, shape (n_folds, n_genes), optional
        Use these alphas instead of choosing them (how the permutation null reuses the
        real-data choices).
    verbose : bool
        Log each outer fold (off inside gene chunks: the chunk loop logs instead).
    groups : ndarray, shape (n_types,), optional
        Group (animal) of each row: the inner alpha search keeps groups whole.
    inner_score : bool
        Keep each fold's inner-CV error per gene (``CVResult.fold_inner_mse``; a fixed alpha
        is then fitted as a one-alpha path: :meth:`TrainSettings.estimator`).
    """
    start = time.perf_counter()
    n, n_genes = Y.shape
    oof_linear = np.empty((n, n_genes))
    alphas_used = np.empty((len(folds), n_genes))
    nonzero = np.empty((len(folds), n_genes), dtype=np.int64)
    inner = np.empty((len(folds), n_genes)) if inner_score else None
    for k, (tr, te) in enumerate(folds):
        alpha = None if fold_alpha is None else fold_alpha[k]
        est = settings.estimator(alpha, len(tr), inner_score=inner_score)
        est.fit(
            X[tr],
            Y[tr],
            None if weights is None else weights[tr],
            groups=None if groups is None else groups[tr],
        )
        oof_linear[te] = est.predict(X[te], clip=False)
        alphas_used[k] = est.alpha_
        nonzero[k] = (est.coef_ != 0).sum(axis=1)
        if inner is not None:
            inner[k] = est.cv_mse_[np.arange(n_genes), est.alpha_index_]
        if fold_alpha is None and verbose:
            log_progress("nested CV: outer fold", k + 1, len(folds), start)
    oof = clip_expression(oof_linear.copy())
    return CVResult(oof, oof_linear, alphas_used, nonzero, time.perf_counter() - start, inner)


__all__ = ["CVResult", "log_progress", "nested_cv"]
