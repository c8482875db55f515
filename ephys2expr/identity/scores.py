"""How good the identity probabilities are: out-of-fold accuracy, balanced accuracy,
log-loss, expected calibration error, confusion matrix and reliability bins."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

from ephys2expr.identity.classifier import log_loss

N_BINS = 10  # reliability / ECE bins of the top-class probability, equal width on [0, 1]


def reliability_bins(proba: np.ndarray, y_index: np.ndarray, n_bins: int = N_BINS) -> dict:
    """Per bin of the top-class probability: rows, mean confidence, accuracy."""
    conf = proba.max(axis=1)
    hit = proba.argmax(axis=1) == y_index
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    n = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, conf, n_bins) / n
        acc = np.bincount(which, hit.astype(float), n_bins) / n
    return {"edges": edges, "n": n, "confidence": mean_conf, "accuracy": acc}


def expected_calibration_error(proba: np.ndarray, y_index: np.ndarray) -> float:
    """ECE of the top class: sum over bins of (rows share) x |accuracy - mean confidence|."""
    b = reliability_bins(proba, y_index)
    ok = b["n"] > 0
    gap = np.abs(b["accuracy"][ok] - b["confidence"][ok])
    return float((b["n"][ok] / b["n"].sum() * gap).sum())


def identity_scores(proba: np.ndarray, y_index: np.ndarray) -> dict:
    """Out-of-fold scores of one probability table (rows in ``y_index`` order)."""
    pred = proba.argmax(axis=1)
    return {
        "accuracy": round(float((pred == y_index).mean()), 6),
        "balanced_accuracy": round(float(balanced_accuracy_score(y_index, pred)), 6),
        "log_loss": round(log_loss(proba, y_index), 6),
        "ece": round(expected_calibration_error(proba, y_index), 6),
    }


def confusion(proba: np.ndarray, y_index: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts, true class (rows) x predicted class (columns), full class list."""
    return confusion_matrix(y_index, proba.argmax(axis=1), labels=np.arange(n_classes))


__all__ = [
    "N_BINS",
    "confusion",
    "expected_calibration_error",
    "identity_scores",
    "reliability_bins",
]
