"""Save and load a model store folder as one unit, checked on load (no pickle).

The on-disk layout and its checks are in :mod:`ephys2expr.model.store._format`.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.model.intervals import GeneIntervals
from ephys2expr.model.store._build import with_identity
from ephys2expr.model.store._checks import INTERVALS, TRAIN_FEATURES, TRAIN_TARGETS, TRAIN_TYPES
from ephys2expr.model.store._feature_set import FeatureSet
from ephys2expr.model.store._format import (
    check_replaceable,
    join_set_tables,
    mismatch_note,
    read_store,
    split_feature_sets,
    write_store,
)
from ephys2expr.model.store._identity import (
    CLASS_MEANS,
    IDENTITY,
    identity_from_tables,
    identity_tables,
)
from ephys2expr.model.store._memory import ModelStore

log = logging.getLogger("ephys2expr")


def save_model_store(store: ModelStore, directory: str | os.PathLike) -> None:
    """Write a store folder as one unit (:func:`~ephys2expr.model.store._format.write_store`).

    Same store, same bytes: ``model.json`` records the tables' md5, which are themselves
    deterministic, so a rerun leaves every file (and ``git status``) unchanged. Both tables
    are indexed by ``(feature_set, gene)``; a set's coefficients of the features it leaves
    out are written as zeros.
    """
    store.validate()
    meta = {
        "features": store.features,
        "n_genes": int(len(store.primary.coef)),
        "penalty": store.primary.penalty,
        "l1_ratio": float(store.primary.l1_ratio),
        "scaler_mean": store.primary.scaler_mean.tolist(),
        "scaler_scale": store.primary.scaler_scale.tolist(),
        "feature_min": store.primary.feature_min.tolist(),
        "feature_max": store.primary.feature_max.tolist(),
        # the primary's scaler is the one above; each other set has its own
        "feature_sets": [{"name": store.feature_set, "features": store.features}]
        + [
            {
                "name": name,
                "features": m.features,
                "scaler_mean": m.scaler_mean.tolist(),
                "scaler_scale": m.scaler_scale.tolist(),
            }
            for name, m in list(store.sets.items())[1:]
        ],
        "provenance": store.provenance,
    }
    sets = store.feature_sets
    # every set's intervals, or none (a store built without training's residuals)
    held = all(m.intervals is not None for m in sets.values())
    meta["intervals"] = (
        {n: {"method": m.intervals.method, "k": int(m.intervals.k)} for n, m in sets.items()}
        if held
        else {}
    )
    tables = join_set_tables({n: (m.coef, m.genes) for n, m in sets.items()}, store.features)
    tables[TRAIN_FEATURES] = _train_rows_table(store)
    tables[INTERVALS] = _intervals_table(store)
    meta["identity"], tables[IDENTITY], tables[CLASS_MEANS] = identity_tables(
        store.identity, {n: m.features for n, m in sets.items()}, store.gene_names
    )
    tables[TRAIN_TARGETS], tables[TRAIN_TYPES] = _train_targets_tables(store)
    write_store(directory, meta, tables)


def _intervals_table(store: ModelStore) -> pd.DataFrame:
    """Every set's interval table, indexed by (feature set, gene); ``scale_<feature>``
    columns over all the store's features (a set's left-out ones 0.0)."""
    frames = {}
    for name, m in store.feature_sets.items():
        if m.intervals is None:
            return pd.DataFrame(
                index=pd.MultiIndex.from_arrays([[], []], names=["feature_set", "gene"])
            )
        t = m.intervals.table
        q = [c for c in t.columns if c.startswith("q_")]
        scale = [f"scale_{f}" for f in store.features]
        rest = ["scale_knn", "scale_lo", "scale_hi"]
        frames[name] = t.reindex(columns=q + ["scale_intercept"] + scale + rest, fill_value=0.0)
    return pd.concat(frames, names=["feature_set", "gene"]).astype(float)


def _train_targets_tables(store: ModelStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training targets (index ``gene``, one column per row) and row metadata (index
    ``row``) as stored; empty tables if the store has none."""
    if store.train_targets is None:
        empty = pd.Index([], dtype=object, name="row")
        return (
            pd.DataFrame(index=pd.Index([], dtype=object, name="gene")),
            pd.DataFrame({"broad_type": pd.Series(dtype=object)}, index=empty),
        )
    y = store.train_targets.astype(float).copy()
    y.index = pd.Index([str(g) for g in y.index], dtype=object, name="gene")
    y.columns = [str(c) for c in y.columns]
    types = store.train_types.copy()
    types.index = pd.Index([str(i) for i in types.index], dtype=object, name="row")
    return y, types


def _train_rows_table(store: ModelStore) -> pd.DataFrame:
    """The training rows as stored (index ``row``, str); no rows if the store has none."""
    rows = store.train_features
    if rows is None:
        return pd.DataFrame(
            {f: pd.Series(dtype=float) for f in store.features},
            index=pd.Index([], dtype=object, name="row"),
        )
    rows = rows.astype(float).copy()
    rows.index = pd.Index([str(i) for i in rows.index], dtype=object, name="row")
    return rows


def check_store_destination(directory: str | os.PathLike) -> None:
    """Raise :class:`InputError` now if :func:`save_model_store` would refuse ``directory``
    (a file, or a folder holding other files): checked before training, not after."""
    check_replaceable(directory)


def load_model_store(directory: str | os.PathLike) -> ModelStore:
    """Load and check a store folder; any problem is a one-line :class:`InputError`
    naming the folder (or its ``model.json``). Stores of schema 2 (one feature set) load as
    a store of their one set."""
    where = os.fspath(directory)
    meta, tables, mismatched = read_store(directory)
    note = f"; {mismatch_note(mismatched)}" if mismatched else ""
    coef, genes = tables["coef.parquet"], tables["genes.parquet"]
    try:
        sets = {}
        for entry, set_coef, set_genes in split_feature_sets(meta, coef, genes):
            if meta["n_genes"] != len(set_coef):
                in_set = f" in feature set {entry['name']!r}" if sets else ""
                raise InputError(
                    f"model store: n_genes {meta['n_genes']} but coef has {len(set_coef)} "
                    f"rows{in_set}"
                )
            idx = [meta["features"].index(f) for f in entry["features"]]
            sets[entry["name"]] = FeatureSet(
                name=entry["name"],
                features=entry["features"],
                coef=set_coef,
                genes=set_genes,
                scaler_mean=entry["scaler_mean"],
                scaler_scale=entry["scaler_scale"],
                feature_min=[meta["feature_min"][i] for i in idx],
                feature_max=[meta["feature_max"][i] for i in idx],
                penalty=meta["penalty"],
                l1_ratio=meta["l1_ratio"],
            )
        if len(tables.get(INTERVALS, ())):
            sets = {
                n: _with_intervals(m, tables[INTERVALS], meta["intervals"][n])
                for n, m in sets.items()
            }
        store = ModelStore(sets=sets, provenance=meta["provenance"])
        store = _with_train_rows(store, tables.get(TRAIN_FEATURES), where)
        store = _with_train_targets(store, tables.get(TRAIN_TARGETS), tables.get(TRAIN_TYPES))
        if IDENTITY in tables:  # schema 6; a knn classifier's rows are the training rows
            identity = identity_from_tables(
                meta.get("identity"),
                tables[IDENTITY],
                tables[CLASS_MEANS],
                {n: m.features for n, m in store.feature_sets.items()},
                store.gene_names,
                store.train_features,
                store.train_types,
            )
            if identity is not None:
                store = with_identity(store, identity)
    except InputError as exc:  # name the folder, and say if the files do not belong together
        raise InputError(f"{where}: {str(exc).removeprefix('model store: ')}{note}") from None
    if mismatched:
        raise InputError(f"{where}: {mismatch_note(mismatched)}")
    return store


def _with_intervals(model: FeatureSet, table: pd.DataFrame, entry: dict) -> FeatureSet:
    """``model`` holding its set's rows of the intervals table (checked on construction)."""
    name = model.name
    if list(table.index.names) != ["feature_set", "gene"] or name not in table.index.levels[0]:
        raise InputError(f"model store: {INTERVALS} holds no rows of feature set {name!r}")
    t = table.xs(name, level=0)
    t = t.drop(
        columns=[
            c
            for c in t.columns
            if c.startswith("scale_")
            and c[6:] not in (*model.features, "intercept", "knn", "lo", "hi")
        ]
    )
    intervals = GeneIntervals(entry["method"], t, list(model.features), entry["k"])
    return dataclasses.replace(model, intervals=intervals)


def _with_train_rows(store: ModelStore, rows: pd.DataFrame | None, where: str) -> ModelStore:
    """The store holding its training rows (checked by ``validate``), or as it is with one
    log line when its folder has none (schema 4 and older, or saved without them)."""
    if rows is None or len(rows) == 0:
        log.warning(
            "%s: the model store holds no training feature rows (%s), so ood_score is NaN "
            "for every cell; retrain it (dvc repro train) to get them",
            where,
            TRAIN_FEATURES,
        )
        return store
    if sorted(map(str, rows.columns)) != sorted(store.features):
        raise InputError(
            f"model store: {TRAIN_FEATURES} columns {list(rows.columns)} are not the "
            f"features {store.features}"
        )
    return dataclasses.replace(store, train_features=rows[store.features].astype(float))


def _with_train_targets(store: ModelStore, y: pd.DataFrame | None, types) -> ModelStore:
    """The store holding its training targets and row metadata (schema 6), checked by
    ``validate``; as it is when its folder has none (older schemas, or saved without)."""
    if y is None or y.shape[1] == 0 or store.train_features is None:
        return store
    rows = [str(r) for r in store.train_features.index]
    if list(y.index) != store.gene_names or list(y.columns) != rows:
        raise InputError(f"model store: {TRAIN_TARGETS} is not the store's genes x training rows")
    if types is None or list(types.index) != rows:
        raise InputError(f"model store: {TRAIN_TYPES} does not hold the training rows")
    return dataclasses.replace(
        store,
        train_targets=y.set_axis(store.primary.coef.index, axis=0).set_axis(
            store.train_features.index, axis=1
        ),
        train_types=types.set_axis(store.train_features.index, axis=0),
    )


__all__ = ["check_store_destination", "load_model_store", "save_model_store"]
