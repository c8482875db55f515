"""Feature sets the inputs need and the store lacks, fitted before predicting (issue #21).

Every cell is predicted by a model over exactly the store's features it has: a missing pattern
of an input that no set of the store has exactly (among cells with at least
``cells.min_features`` features) gets its set fitted by ``fit_set`` - the stage passes
:func:`ephys2expr.train.on_demand.fit_feature_set`, which fits it from the store's own
training tables with the store's settings and caches it outside the DVC outputs.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from ephys2expr.errors import InputError
from ephys2expr.model.store import ModelStore, add_feature_set
from ephys2expr.predict.inputs.cells import check_feature_columns, read_cell_table

log = logging.getLogger("ephys2expr.predict")


def sets_to_fit(
    path: str | os.PathLike,
    store: ModelStore,
    min_features: int,
    id_column: str | None = None,
    implausible: str = "error",
) -> list[list[str]]:
    """The feature lists (store order) of the table's missing patterns that no set of the
    store has exactly, among cells with at least ``min_features`` of the store's features:
    the sets to fit on demand. ``implausible``: ``predict.implausible`` (with
    ``drop_value`` a value outside the plausible range is missing here too, as in
    :func:`load_cells`, so its cell's pattern gets its set). A table that cannot be read or
    checked gives none here (:func:`load_cells` then names the problem). Logs nothing:
    :func:`load_cells` reads the table again and says what it finds."""
    quiet = logging.getLogger("ephys2expr")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # setLevel, not .level: it clears the loggers' caches
    try:
        cells = read_cell_table(path, id_column=id_column)
        present = [f for f in store.features if f in cells.columns]
        values = check_feature_columns(cells, present, str(path), implausible)
    except InputError:
        return []
    finally:
        quiet.setLevel(level)
    has = values.reindex(columns=store.features).notna().to_numpy()
    known = {tuple(np.isin(store.features, m.features)) for m in store.feature_sets.values()}
    rows = np.unique(has, axis=0) if len(has) else has
    return [
        [f for f, h in zip(store.features, row, strict=True) if h]
        for row in rows
        if row.sum() >= min_features and tuple(bool(v) for v in row) not in known
    ]


def add_missing_sets(
    sources,
    store: ModelStore,
    min_features: int,
    fit_set,
    id_column: str | None = None,
    implausible: str = "error",
) -> tuple[ModelStore, dict[str, dict]]:
    """``store`` with a fitted set for every pattern of the tables ``sources`` that it lacks
    (:func:`sets_to_fit`), and each new set's features and ``n_permutations`` by name (the
    log says where it is cached and how long it took)."""
    notes: dict[str, dict] = {}
    for source in sources:
        for features in sets_to_fit(source, store, min_features, id_column, implausible):
            if store.train_targets is None:  # schema 5 and older: nothing to fit from
                log.info(
                    "%s: cells with exactly %s are not predicted: the model store has no such "
                    "feature set and holds no training targets to fit it on demand (retrain "
                    "it: dvc repro train)",
                    source,
                    ", ".join(features),
                )
                continue
            model, note = fit_set(store, features)
            store = add_feature_set(store, model)
            # the report's part: what was fitted, not where or how fast (same inputs, same bytes)
            notes[model.feature_set] = {k: note[k] for k in ("features", "n_permutations")}
    return store, notes


__all__ = ["add_missing_sets", "sets_to_fit"]
