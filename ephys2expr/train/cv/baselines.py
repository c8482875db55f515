"""The baselines the model must beat, predicted on the same outer folds as the model.

``mean`` and ``ols`` are what a user could run themselves (:data:`USER_BASELINES`: a gene
is trusted when it beats them and passes the permutation null); ``class`` uses the true
Exc/Inh class of the held-out row (:data:`ORACLE_BASELINES`), reported beside them.

Per-cell training data add a labelled **ceiling**: the mean of the held-out cell's RNA family
(``family`` of ``train_types``). It uses the cell's true transcriptomic label, which a
prediction from ephys never has, so it is reported beside the baselines but never counted in
"beats all baselines".
"""

from __future__ import annotations

import numpy as np

from ephys2expr.model.store import ORACLE_BASELINES, clip_expression
from ephys2expr.scaling import scaler_stats

BASELINES = ("mean", "ols", "class")
# The baselines a user could run on their own cells: a gene is trusted only if it beats these
# (and passes the null). ``class`` is an oracle: it predicts each held-out cell from its TRUE
# Exc/Inh class, which a prediction from ephys never has, so beating it is reported in a
# column of its own (``beats_class_oracle`` in a predictions file), never required to trust
# a gene: Gad1 (out-of-fold r2 0.79 on Scala 2021) loses only to it.
USER_BASELINES = ("mean", "ols")
CEILINGS = ("family",)


def _label_means(out, Y, w, tr, te, labels, fallback) -> None:
    """``out[te]`` = weighted training mean of the rows sharing the held-out row's label
    (``fallback`` where the training part has none). Once per label, not per row: per-cell
    data have thousands of rows."""
    for c in dict.fromkeys(labels[te].tolist()):
        rows = te[labels[te] == c]
        same = tr[labels[tr] == c]
        out[rows] = w[same] @ Y[same] / w[same].sum() if len(same) else fallback


def baseline_predictions(
    X, Y, folds, weights=None, classes=None, families=None
) -> dict[str, np.ndarray]:
    """Out-of-fold predictions of the baselines, each (n_rows, n_genes).

    ``mean``: the (weighted) mean of the training rows - what the model predicts when all
    coefficients are zero. ``ols``: ordinary least squares on all features (the original
    project's comparison; minimum-norm solution if the fold is rank-deficient). ``class``:
    the (weighted) mean of the training rows of the held-out row's broad class (Exc/Inh),
    the overall training mean when the fold has none of that class. With ``families`` (one
    RNA family per cell) also the ``family`` ceiling, computed like ``class``. Clipped to
    the possible log2 expressions like the model's (only OLS can leave them).
    """
    n, n_genes = Y.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    names = BASELINES + (CEILINGS if families is not None else ())
    out = {name: np.empty((n, n_genes)) for name in names}
    classes = np.zeros(n, dtype=object) if classes is None else np.asarray(classes)
    for tr, te in folds:
        wt = w[tr]
        ybar = wt @ Y[tr] / wt.sum()
        out["mean"][te] = ybar
        mean, scale = scaler_stats(X[tr])
        Xs = (X[tr] - mean) / scale
        xbar = wt @ Xs / wt.sum()
        sw = np.sqrt(wt)[:, None]
        coef, *_ = np.linalg.lstsq((Xs - xbar) * sw, (Y[tr] - ybar) * sw, rcond=None)
        out["ols"][te] = ybar + ((X[te] - mean) / scale - xbar) @ coef
        _label_means(out["class"], Y, w, tr, te, classes, ybar)
        if families is not None:
            _label_means(out["family"], Y, w, tr, te, np.asarray(families), ybar)
    for pred in out.values():  # compared with the model's predictions, clipped alike
        clip_expression(pred)
    return out


__all__ = ["BASELINES", "CEILINGS", "ORACLE_BASELINES", "USER_BASELINES", "baseline_predictions"]
