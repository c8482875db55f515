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
    store: ModelStore, X: np.ndarray, cell_sets: np.ndarray | None, index: pd.Index
) -> tuple[pd.DataFrame | None, dict]:
    """``(obs columns, obsm tables)`` for the cells ``X`` (store features, rows named by
    ``index``): obs ``<level>`` (most probable class) and ``<level>_probability`` (its
    probability) per level, obsm ``<level>_proba`` (cells x classes, columns named by
    class). ``(None, {})`` for a store without identity classifiers."""
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
    obs = pd.DataFrame(index=index)
    for lv, table in tables.items():
        values = table.to_numpy()
        obs[lv] = np.asarray(table.columns, dtype=object)[values.argmax(axis=1)]
        obs[f"{lv}_probability"] = values.max(axis=1).astype(np.float32)
    return obs, {f"{lv}_proba": table.astype(np.float32) for lv, table in tables.items()}


__all__ = ["identity_outputs"]
