"""Standardisation, the one owner: a scaler's statistics and its application.

Every scaler of the project (the lasso's, each CV fold's, the OOD score's, the identity
classifier's) is :func:`scaler_stats` of its training rows, applied with
:func:`standardise`.
"""

from __future__ import annotations

import numpy as np


def scaler_stats(X: np.ndarray, near_constant: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Unweighted mean and population std of ``X``'s columns; a constant column's scale is 1.

    With ``near_constant`` (as scikit-learn's ``StandardScaler``) a column whose std is
    within rounding of zero counts as constant too; without it only an exact zero does
    (the identity classifier's rule, kept so that its results do not move).
    """
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    if near_constant:
        tiny = 10 * np.finfo(float).eps * np.maximum(np.abs(mean), 1.0)
        return mean, np.where(scale < tiny, 1.0, scale)
    return mean, np.where(scale > 0, scale, 1.0)


def standardise(X, mean, scale) -> np.ndarray:
    """``(X - mean) / scale`` as float64 (a fitted scaler applied)."""
    return (np.asarray(X, dtype=float) - np.asarray(mean, dtype=float)) / np.asarray(
        scale, dtype=float
    )
