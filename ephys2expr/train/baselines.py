"""The baselines the model must beat, predicted on the same outer folds as the model."""

from __future__ import annotations

import numpy as np

from ephys2expr.model.estimator import standardize_stats

BASELINES = ("mean", "ols", "class")


def baseline_predictions(X, Y, folds, weights=None, classes=None) -> dict[str, np.ndarray]:
    """Out-of-fold predictions of the baselines, each (n_types, n_genes).

    ``mean``: the (weighted) mean of the training types - what the model predicts when all
    coefficients are zero. ``ols``: ordinary least squares on all features (the original
    project's comparison; minimum-norm solution if the fold is rank-deficient). ``class``:
    the (weighted) mean of the training types of the held-out type's broad class (Exc/Inh),
    the overall training mean when the fold has none of that class.
    """
    n, n_genes = Y.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    out = {name: np.empty((n, n_genes)) for name in BASELINES}
    if classes is None:
        classes = np.zeros(n, dtype=object)
    classes = np.asarray(classes)
    for tr, te in folds:
        wt = w[tr]
        ybar = wt @ Y[tr] / wt.sum()
        out["mean"][te] = ybar
        mean, scale = standardize_stats(X[tr])
        Xs = (X[tr] - mean) / scale
        xbar = wt @ Xs / wt.sum()
        sw = np.sqrt(wt)[:, None]
        coef, *_ = np.linalg.lstsq((Xs - xbar) * sw, (Y[tr] - ybar) * sw, rcond=None)
        out["ols"][te] = ybar + ((X[te] - mean) / scale - xbar) @ coef
        # once per class of the held-out rows, not per row (thousands of per-cell rows)
        for c in dict.fromkeys(classes[te].tolist()):
            rows = te[classes[te] == c]
            same = tr[classes[tr] == c]
            if len(same):
                out["class"][rows] = w[same] @ Y[same] / w[same].sum()
            else:
                out["class"][rows] = ybar
    return out


__all__ = ["BASELINES", "baseline_predictions"]
