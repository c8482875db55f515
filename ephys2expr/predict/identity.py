"""Identity outputs of a prediction: each cell's most probable family and type with their
probabilities (obs) and the full probability tables (obsm), from the store's classifiers.

Only stores trained with ``train.model: mixture | best`` on per-cell data hold classifiers
(:mod:`ephys2expr.model.store`); for any other store there are no identity
outputs. Each cell is classified by the classifier of its own feature set (``cell_sets``,
as its expression is predicted). A cell's type is always inside its family: the type
probabilities are nested in the family classifier's
(:func:`~ephys2expr.model.store.nest_types`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ephys2expr.identity.temper import temper
from ephys2expr.model.store import ModelStore, nest_types


def identity_outputs(
    store: ModelStore,
    X: np.ndarray,
    cell_sets: np.ndarray | None,
    index: pd.Index,
    allowed: np.ndarray | None = None,
    temperature: np.ndarray | None = None,
) -> tuple[pd.DataFrame | None, dict]:
    """``(obs columns, obsm tables)`` for the cells ``X`` (store features, rows named by
    ``index``): obs ``<level>`` (most probable class) and ``<level>_probability`` (its
    probability) per level, obsm ``<level>_proba`` (cells x classes, columns named by
    class). ``(None, {})`` for a store without identity classifiers. ``allowed`` (cells x
    families, bool: a known class) zeroes the other families, and the types of other
    families, and renormalises; ``temperature`` (per cell, docs/transfer.md) tempers every
    level's probabilities (the most probable class is unchanged)."""
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
    if temperature is not None and np.any(np.asarray(temperature) != 1.0):
        for lv, table in tables.items():
            p = temper(table.to_numpy(), temperature)
            tables[lv] = pd.DataFrame(p, index=table.index, columns=table.columns)
    chosen = {lv: table.to_numpy().argmax(axis=1) for lv, table in tables.items()}
    type_family = store_type_families(store, tables)
    if type_family is not None:  # the type inside the family (docs/identity.md)
        nested, chosen["type"] = nest_types(
            tables["family"].to_numpy(), tables["type"].to_numpy(), type_family
        )
        tables["type"] = pd.DataFrame(nested, index=index, columns=tables["type"].columns)
    obs = pd.DataFrame(index=index)
    for lv, table in tables.items():
        values = table.to_numpy()
        obs[lv] = np.asarray(table.columns, dtype=object)[chosen[lv]]
        obs[f"{lv}_probability"] = values[np.arange(len(values)), chosen[lv]].astype(np.float32)
    return obs, {f"{lv}_proba": table.astype(np.float32) for lv, table in tables.items()}


def restrict(store: ModelStore, tables: dict, allowed: np.ndarray) -> None:
    """Zero the probabilities of families (and their types) ``allowed`` excludes, then
    renormalise; a cell whose allowed classes all have probability 0 keeps them uniform."""
    masks = {"family": allowed}
    type_family = store_type_families(store, tables)
    if type_family is not None:
        masks["type"] = allowed[:, type_family]
    for lv, mask in masks.items():
        p = np.where(mask, tables[lv].to_numpy(), 0.0)
        tot = p.sum(axis=1, keepdims=True)
        p = np.where(
            tot > 0,
            p / np.where(tot > 0, tot, 1.0),
            mask / np.maximum(mask.sum(axis=1, keepdims=True), 1),
        )
        tables[lv] = pd.DataFrame(p, index=tables[lv].index, columns=tables[lv].columns)


def store_type_families(store: ModelStore, tables: dict) -> np.ndarray | None:
    """Each type's family (a column of ``tables["family"]``), from the store's training rows'
    labels; None when the store has not both levels or not the labels (no nesting)."""
    types = store.train_types
    if {"family", "type"} - set(tables) or types is None or {"family", "type"} - set(types):
        return None
    lookup = types.groupby("type")["family"].first()
    families = list(tables["family"].columns)
    if not set(tables["type"].columns) <= set(lookup.index) or not set(lookup) <= set(families):
        return None
    return np.array([families.index(lookup[t]) for t in tables["type"].columns])


__all__ = ["identity_outputs", "restrict", "store_type_families"]
