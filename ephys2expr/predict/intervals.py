"""Per-cell prediction intervals of a chunk of cells, from what the model store holds.

Each cell's interval for a gene is its prediction ``+- q * sigma`` of its feature set's
interval model (:class:`~ephys2expr.model.intervals.GeneIntervals`: the conformal quantile
at ``predict.interval_level`` and the difficulty model, both fitted in training on
out-of-fold residuals), clipped to the possible log2 expressions (never below 0). Nothing
is refitted here: the kNN difficulty (method ``knn``) measures distances to the store's own
training rows.

**Cells beyond the training range.** Their linear models see the cell moved into the
training range (:func:`~ephys2expr.model.ood.bound_features`), and their intervals say
that this is a guess: the half-width is at least the gene's widest training half-width
(``q`` times the difficulty's upper clip ``scale_hi``: the widest interval a training-like
cell can get; methods ``plain`` and ``features``; ``knn`` grows with distance by itself),
times ``1 + e`` where ``e`` is the cell's largest distance beyond the range in units of the
range (:func:`~ephys2expr.model.ood.range_excess`); the interval spans both the prediction
and the linear model's extrapolation, and where the clip to possible expressions (0 and
the ceiling) cuts it, it is extended on the other side to keep its width. So it widens
with the distance and is never narrower than the widest interval a cell in range can get.
Before, the type-mean store gave a foreign cell Lamp5 19.93 [14.87, 19.94] at
``ood_score`` 100, and its far cells' median width (1.06) was that of the others (1.08).

The bounds are stored as float16, rounded outward (the lower bound down, the upper one up
to the next float16), so that the rounding never narrows an interval: float16 steps are
0.0039 to 0.0156 log2 units between 2 and 20, far below the intervals' widths (median ~2.4
x the gene's SD on the Scala cells), and the two layers together take the bytes of ``X``.
"""

from __future__ import annotations

import numpy as np

from ephys2expr.model.intervals import chunk_bounds, half_width, q_column
from ephys2expr.model.ood import NeighborScore, range_excess
from ephys2expr.model.store import EXPRESSION_RANGE, ModelStore
from ephys2expr.scaling import standardise

BOUND_DTYPE = np.float16


def has_intervals(store: ModelStore) -> bool:
    """Whether every feature set of ``store`` holds intervals (schema 6 stores trained by
    the train stage)."""
    return all(m.intervals is not None for m in store.feature_sets.values())


def interval_methods(store: ModelStore) -> dict:
    """``{feature set: method}`` (what ``uns`` records)."""
    return {name: m.intervals.method for name, m in store.feature_sets.items()}


def interval_terms(store: ModelStore, gene_idx: np.ndarray, level: float) -> list:
    """Per feature set (store order): ``(difficulty arrays, q, feature columns, scorer,
    training range)`` for the genes ``gene_idx`` at ``level`` (what :func:`interval_bounds`
    takes). ``scorer`` is a :class:`~ephys2expr.model.ood.NeighborScore` on the set's
    standardised training rows (method ``knn`` only, else None); the training range is the
    set's ``(feature_min, feature_max)``."""
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
        terms.append((iv.params(gene_idx), q, cols, scorer, (model.feature_min, model.feature_max)))
    return terms


def outward(values: np.ndarray, direction: float) -> np.ndarray:
    """``values`` as float16, each rounded toward ``direction`` (-inf: down, +inf: up) where
    the nearest float16 is on the other side."""
    out = values.astype(BOUND_DTYPE)
    wrong = out < values if direction > 0 else out > values
    out[wrong] = np.nextafter(out[wrong], BOUND_DTYPE(direction))
    return out


def far_half_width(hw: np.ndarray, params: dict, q: np.ndarray, excess: np.ndarray):
    """Half-widths (cells x genes) of cells beyond the training range: at least the gene's
    widest training half-width (``q * scale_hi`` where that is finite), times ``1 +
    excess`` (``excess``: per cell, its largest :func:`~ephys2expr.model.ood.range_excess`)."""
    hi = params["hi"]
    with np.errstate(invalid="ignore"):  # inf * 0: a constant gene at a high level
        edge = np.where(np.isfinite(hi), hi, 0.0) * q
    edge = np.where(np.isnan(edge), np.inf, edge)
    return np.maximum(hw, edge) * (1.0 + excess[:, None])


def interval_bounds(
    terms: list, X: np.ndarray, cell_sets: np.ndarray, block: np.ndarray, extrapolated=None
):
    """``(lower, upper)``, genes x cells float16, of one chunk predicted as ``block`` (genes
    x cells): each cell by its feature set's interval model.

    A cell beyond its set's training range gets :func:`far_half_width`; with
    ``extrapolated`` (a function of a boolean cell mask giving those cells' unbounded
    predictions, genes x cells) its interval also spans that extrapolation."""
    half = np.empty(block.shape, dtype=float)
    beyond = np.zeros(len(X), dtype=bool)
    for s in np.unique(cell_sets):
        params, q, cols, scorer, (fmin, fmax) = terms[s]
        mask = cell_sets == s
        Xs = X[mask][:, cols]
        distance = None
        if scorer is not None:
            nn, mean, scale = scorer
            distance = nn.distance(standardise(Xs, mean, scale))
        hw = half_width(params, q, Xs, distance)
        excess = range_excess(Xs, fmin, fmax).max(axis=1, initial=0.0)
        far = excess > 0
        if far.any():
            hw[far] = far_half_width(hw[far], params, q, excess[far])
            beyond[np.flatnonzero(mask)[far]] = True
        half[:, mask] = hw.T
    if extrapolated is not None and beyond.any():
        raw = np.asarray(extrapolated(beyond), dtype=float)
    else:  # a far cell's interval still keeps its width where the clip cuts it
        raw = block[:, beyond].astype(float)
    lower, upper = chunk_bounds(block, half, beyond, raw, EXPRESSION_RANGE)
    return outward(lower, -np.inf), outward(upper, np.inf)


__all__ = [
    "BOUND_DTYPE",
    "far_half_width",
    "has_intervals",
    "interval_bounds",
    "interval_methods",
    "interval_terms",
    "outward",
]
