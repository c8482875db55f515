"""Per-cell prediction intervals of a chunk of cells, from what the model store holds.

Each cell's interval for a gene is its prediction ``+- q * sigma`` of its feature set's
interval model (:class:`~ephys2expr.model.intervals.GeneIntervals`: the conformal quantile
at ``predict.interval_level`` and the difficulty model, both fitted in training on
out-of-fold residuals), clipped to the possible log2 expressions (never below 0). Nothing
is refitted here: the kNN difficulty (method ``knn``) measures distances to the store's own
training rows.

The bounds are stored as float16, rounded outward (the lower bound down, the upper one up
to the next float16), so that the rounding never narrows an interval: float16 steps are
0.0039 to 0.0156 log2 units between 2 and 20, far below the intervals' widths (median ~2.4
x the gene's SD on the Scala cells), and the two layers together take the bytes of ``X``.
"""

from __future__ import annotations

import numpy as np

from ephys2expr.model.intervals import q_column, scale_values
from ephys2expr.model.ood import NeighborScore, standardise
from ephys2expr.model.store import EXPRESSION_RANGE, ModelStore

BOUND_DTYPE = np.float16


def has_intervals(store: ModelStore) -> bool:
    """Whether every feature set of ``store`` holds intervals (schema 6 stores trained by
    the train stage)."""
    return all(m.intervals is not None for m in store.feature_sets.values())


def interval_methods(store: ModelStore) -> dict:
    """``{feature set: method}`` (what ``uns`` records)."""
    return {name: m.intervals.method for name, m in store.feature_sets.items()}


def interval_terms(store: ModelStore, gene_idx: np.ndarray, level: float) -> list:
    """Per feature set (store order): ``(difficulty arrays, q, feature columns, scorer)`` for
    the genes ``gene_idx`` at ``level`` (what :func:`interval_bounds` takes). ``scorer`` is a
    :class:`~ephys2expr.model.ood.NeighborScore` on the set's standardised training rows
    (method ``knn`` only, else None)."""
    terms = []
    for model in store.feature_sets.values():
        iv = model.intervals
        scorer = None
        if iv.needs_distance:
            rows = store.train_features[model.features].to_numpy(dtype=float)
            scorer = (
                NeighborScore(iv.k).fit(standardise(rows, model.scaler_mean, model.scaler_scale)),
                model.scaler_mean,
                model.scaler_scale,
            )
        q = iv.table[q_column(level)].to_numpy(dtype=float)[gene_idx]
        cols = np.array([store.features.index(f) for f in model.features], dtype=np.int64)
        terms.append((iv.params(gene_idx), q, cols, scorer))
    return terms


def outward(values: np.ndarray, direction: float) -> np.ndarray:
    """``values`` as float16, each rounded toward ``direction`` (-inf: down, +inf: up) where
    the nearest float16 is on the other side."""
    out = values.astype(BOUND_DTYPE)
    wrong = out < values if direction > 0 else out > values
    out[wrong] = np.nextafter(out[wrong], BOUND_DTYPE(direction))
    return out


def interval_bounds(terms: list, X: np.ndarray, cell_sets: np.ndarray, block: np.ndarray):
    """``(lower, upper)``, genes x cells float16, of one chunk predicted as ``block`` (genes
    x cells): each cell by its feature set's interval model."""
    half = np.empty(block.shape, dtype=float)
    for s in np.unique(cell_sets):
        params, q, cols, scorer = terms[s]
        mask = cell_sets == s
        Xs = X[mask][:, cols]
        distance = None
        if scorer is not None:
            nn, mean, scale = scorer
            distance = nn.distance(standardise(Xs, mean, scale))
        with np.errstate(invalid="ignore"):  # inf * 0: a constant gene at a high level
            hw = scale_values(params, Xs, distance) * q
        half[:, mask] = np.where(np.isnan(hw), np.inf, hw).T
    lo, hi = EXPRESSION_RANGE
    pred = block.astype(float)
    lower = np.clip(pred - half, lo, hi)
    upper = np.clip(pred + half, lo, hi)
    return outward(lower, -np.inf), outward(upper, np.inf)


__all__ = [
    "BOUND_DTYPE",
    "has_intervals",
    "interval_bounds",
    "interval_methods",
    "interval_terms",
    "outward",
]
