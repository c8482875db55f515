"""Expression through identity: per gene, the sum over classes of P(class | x) times that
class's mean expression, and the per-gene choice between model kinds.

A cell's predicted log2 expression of gene ``g`` is ``sum_c P(c | x) * mean_c[g]``, the
class means taken over the training rows only (in CV: the outer training part). A class the
training rows lack has probability 0 (:mod:`~ephys2expr.identity.classifier`), so its mean
never enters; it is set to the overall training mean to keep the table finite.
"""

from __future__ import annotations

import numpy as np


def class_means(Y: np.ndarray, y_index: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean of ``Y`` (rows x genes) per class, shape (n_classes, n_genes); classes without
    rows get the overall mean."""
    Y = np.asarray(Y, dtype=float)
    counts = np.bincount(y_index, minlength=n_classes).astype(float)
    sums = np.zeros((n_classes, Y.shape[1]))
    np.add.at(sums, y_index, Y)
    means = np.tile(Y.mean(axis=0), (n_classes, 1))
    seen = counts > 0
    means[seen] = sums[seen] / counts[seen, None]
    return means


def mixture_predict(proba: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Expression of each row, shape (n_rows, n_genes): ``proba @ means``."""
    return np.asarray(proba, dtype=float) @ np.asarray(means, dtype=float)


def inner_mixture_predictions(
    inner_proba: np.ndarray, Y: np.ndarray, y_index: np.ndarray, folds, n_classes: int
) -> np.ndarray:
    """Inner out-of-fold mixture predictions, rows x genes (``folds``: the inner folds
    ``inner_proba`` came from): each validation part uses the class means of its own
    training part, as an outer fold does."""
    out = np.empty(np.shape(Y))
    for tr, va in folds:
        out[va] = mixture_predict(inner_proba[va], class_means(Y[tr], y_index[tr], n_classes))
    return out


def blend(family: np.ndarray, type_: np.ndarray) -> np.ndarray:
    """The ``blend`` kind: the mean of the family-level and type-level mixtures (the one
    place its weight, 0.5, is written)."""
    return 0.5 * (family + type_)


__all__ = ["blend", "class_means", "inner_mixture_predictions", "mixture_predict"]
