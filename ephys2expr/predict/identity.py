"""Identity outputs of a prediction: each cell's most probable family and type with their
probabilities (obs) and the full probability tables (obsm), from the store's classifiers.

Only stores trained with ``train.model: mixture | best`` on per-cell data hold classifiers
(:mod:`ephys2expr.model.store_identity`); for any other store there are no identity
outputs. Each cell is classified by the classifier of its own feature set (``cell_sets``,
as its expression is predicted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ephys2expr.model.store import ModelStore


def identity_outputs(
    store: ModelStore, X: np.ndarray, cell_sets: np.ndarray | None, index: pd.Index,
    allowed: np.ndarray | None = None,
) -> tuple[pd.DataFrame | None, dict]:
    """``(obs columns, obsm tables)`` for the cells ``X`` (store features, rows named by
    ``index``): obs ``<level>`` (most probable class) and ``<level>_probability`` (its
    probability) per level, obsm ``<level>_proba`` (cells x classes, columns named by
    class). ``(None, {})`` for a store without identity classifiers. ``allowed`` (cells x
    families, bool: a known class) zeroes the other families, and the types of other
    families, and renormalises."""
    if store.identity is None:
        return None, {}
    sets = list(store.feature_sets.values())
    cell_sets = np.zeros(len(X), dtype=np.int64) if cell_sets is None else np.asarray(cell_sets)
    levels = list(next(iter(store.identity.classifiers.values())))
    tables = {}
    for lv in levels:
        classes = store.identity.classifiers[store.feature_set][lv].classes
        tables[lv] = pd.DataFrame(np.zeros((len(X), len(classes))), index=index, columns=classes)
    for s in np.unique(cell_sets):
        model = sets[s]
        rows = cell_sets == s
        cols = [store.features.index(f) for f in model.features]
        probas = store.identity.probabilities(model.feature_set, X[np.ix_(rows, cols)])
        for lv, p in probas.items():
            tables[lv].iloc[np.flatnonzero(rows)] = p
    if allowed is not None:
        restrict(store, tables, np.asarray(allowed, bool))
    obs = pd.DataFrame(index=index)
    for lv, table in tables.items():
        values = table.to_numpy()
        obs[lv] = np.asarray(table.columns, dtype=object)[values.argmax(axis=1)]
        obs[f"{lv}_probability"] = values.max(axis=1).astype(np.float32)
    return obs, {f"{lv}_proba": table.astype(np.float32) for lv, table in tables.items()}


def restrict(store: ModelStore, tables: dict, allowed: np.ndarray) -> None:
    """Zero the probabilities of families (and their types) ``allowed`` excludes, then
    renormalise; a cell whose allowed classes all have probability 0 keeps them uniform."""
    fam = tables["family"]
    masks = {"family": allowed}
    if "type" in tables and store.train_types is not None:
        of = store.train_types.groupby("type", observed=True)["family"].first().astype(str)
        pos = {c: i for i, c in enumerate(fam.columns)}
        cols = [pos.get(of.get(t, ""), -1) for t in tables["type"].columns]
        masks["type"] = np.column_stack([allowed[:, j] if j >= 0 else np.zeros(len(fam), bool)
                                         for j in cols])  # fmt: skip
    for lv, mask in masks.items():
        p = np.where(mask, tables[lv].to_numpy(), 0.0)
        tot = p.sum(axis=1, keepdims=True)
        p = np.where(tot > 0, p / np.where(tot > 0, tot, 1.0),
                     mask / np.maximum(mask.sum(axis=1, keepdims=True), 1))  # fmt: skip
        tables[lv] = pd.DataFrame(p, index=tables[lv].index, columns=tables[lv].columns)


__all__ = ["identity_outputs", "restrict"]
