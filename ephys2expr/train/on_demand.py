"""A feature set the model store lacks, fitted when a table needs it (issue #21).

A cell is predicted by a model over exactly the features it has. The train stage fits the
sets the pipeline's tables need (:func:`~ephys2expr.train.feature_sets.derive_feature_sets`);
a table with another missing pattern gets its set here, from the training tables the store
carries (schema 6: ``train_targets`` and ``train_types`` beside ``train_features``), with the
settings the store was trained with (its provenance: the same nested CV, folds, baselines and
permutation null as the pipeline's sets, so the result equals the same set trained by the
pipeline). Fitted sets are cached outside the DVC outputs (``predict.cache_dir``, default
``$XDG_CACHE_HOME/ephys2expr`` or ``~/.cache/ephys2expr``), keyed by the training tables, the
settings, the features and the fitting code, and written as a model store (md5-verified,
never pickled).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import pandas as pd

from ephys2expr import paths
from ephys2expr.errors import InputError
from ephys2expr.model.store import ModelStore, load_model_store, save_model_store, with_identity
from ephys2expr.train.feature_sets import set_name
from ephys2expr.train.identity.best import store_identity
from ephys2expr.train.one_set import fit_set
from ephys2expr.train.settings import trained_settings

log = logging.getLogger("ephys2expr")

# The training rows' metadata the CV reads (train.evaluate.train_and_evaluate): classes for
# the class-mean baseline and leave-one-group-out, weights, animals and families; and the
# transcriptomic type the identity classifiers learn (train.best, model mixture | best).
TYPE_COLUMNS = ("broad_type", "weight", "group", "family", "type")


def stored_training_tables(
    targets: pd.DataFrame, types: pd.DataFrame, rows: pd.Index
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a store keeps to fit a set on demand: genes x ``rows`` targets and the rows'
    :data:`TYPE_COLUMNS` (those present)."""
    cols = [c for c in TYPE_COLUMNS if c in types.columns]
    return targets[list(rows)].astype(float), types.loc[list(rows), cols].copy()


def cache_root(cache_dir: str | os.PathLike = "") -> Path:
    """``cache_dir``, or ``$XDG_CACHE_HOME/ephys2expr`` (default ``~/.cache/ephys2expr``).

    Raises
    ------
    InputError
        If the folder lies inside a model store (a folder with a ``model.json``) or inside
        the project's ``data/`` folder: a cache entry is never written among DVC's outputs.
    """
    if str(cache_dir):
        root = Path(cache_dir).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "ephys2expr"
    real = Path(os.path.realpath(root))
    data = Path(os.path.realpath(paths.DATA))
    for folder in (real, *real.parents):
        if (folder / "model.json").is_file():
            raise InputError(
                f"predict.cache_dir {root}: lies inside the model store {folder}; choose a "
                "folder outside every model store and data folder (default ~/.cache/ephys2expr)"
            )
    if real == data or data in real.parents:
        raise InputError(
            f"predict.cache_dir {root}: lies inside the data folder {data}; choose a folder "
            "outside every model store and data folder (default ~/.cache/ephys2expr)"
        )
    return root


def code_md5() -> str:
    """md5 of the code that fits a set (every module of ``train/``, ``model/`` and
    ``identity/``, sub-folders included): a cached
    set fitted by other code is never reused (DVC reruns predict on a code change, and the
    cache must not hand it the old result)."""
    h = hashlib.md5()
    package = Path(__file__).resolve().parent.parent
    folders = ("train", "model", "identity")
    for path in sorted(p for folder in folders for p in (package / folder).rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def cache_inputs(store: ModelStore, features: list[str], params: dict) -> dict:
    """What a cached set was fitted from: the features, the settings, the fitting code's md5
    (:func:`code_md5`) and the md5 of the training tables (values and labels). An entry is
    used only when every one of them is equal (recorded in its provenance as ``cache``)."""
    h = hashlib.md5()
    for table in (store.train_features, store.train_targets, store.train_types):
        h.update(json.dumps([list(map(str, table.index)), list(map(str, table.columns))]).encode())
        h.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    inputs = {
        "features": list(features),
        "params": params,
        "code_md5": code_md5(),
        "data_md5": h.hexdigest(),
    }
    return json.loads(json.dumps(inputs))  # as model.json gives it back (lists, not tuples)


def cache_key(store: ModelStore, features: list[str], params: dict) -> str:
    """md5 of :func:`cache_inputs` (the training tables, the settings, the features, the
    code): the name of the set's cache folder."""
    return _digest(cache_inputs(store, features, params))


def _digest(inputs: dict) -> str:
    return hashlib.md5(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _cached_set(root: Path, key: str, inputs: dict) -> tuple[ModelStore | None, Path]:
    """The cached set of ``key`` fitted from exactly ``inputs``, and where to save a new one.

    Entries are ``<root>/<key>``, ``<key>-1``, ...: one whose recorded inputs differ (an
    entry of other settings placed under this key), that is a link or not a folder, or that
    does not load is passed over with one log line, and the set is refitted beside it.
    """
    for n in range(100):
        folder = root / (key if n == 0 else f"{key}-{n}")
        if not os.path.lexists(folder):
            return None, folder
        if folder.is_symlink() or not folder.is_dir():
            log.warning("on-demand cache %s is not a folder (a link?): passed over", folder)
            continue
        try:
            model = load_model_store(folder)
        except Exception as exc:  # noqa: BLE001 - any broken entry is passed over, never fatal
            log.warning("on-demand cache %s unusable (%s): passed over", folder, exc)
            continue
        if model.provenance.get("cache") == inputs:
            return model, folder
        log.warning(
            "on-demand cache %s was fitted from other inputs (settings, data or "
            "code): passed over, the set is fitted again beside it",
            folder,
        )
    return None, root / f"{key}-{os.getpid()}"


def fit_feature_set(
    store: ModelStore,
    features: list[str],
    n_permutations: int | None = None,
    cache_dir: str | os.PathLike = "",
) -> tuple[ModelStore, dict]:
    """The model of the feature set ``features`` (a subset of the store's), fitted on the
    store's training tables with its settings (``n_permutations`` overrides the null's size;
    0 = no null, so no q-values), or read from the cache.

    Returns
    -------
    (ModelStore, dict)
        The set's single model (named by :func:`~ephys2expr.train.feature_sets.set_name`)
        and a note: features, n_permutations, seconds, cached (bool), cache folder.
    """
    features = [f for f in store.features if f in features]
    name = set_name(store.features, features)
    if store.train_targets is None or store.train_types is None:
        raise InputError(
            f"model store: no feature set of exactly {features}, and the store holds no "
            "training targets to fit one on demand (a store of schema 5 or older: retrain it "
            "with dvc repro train)"
        )
    settings = trained_settings(store)
    if n_permutations is not None:
        settings = settings.replace(n_permutations=int(n_permutations))
    params = settings.as_dict()
    inputs = cache_inputs(store, features, params)
    root = cache_root(cache_dir)
    t0 = time.perf_counter()
    cached, folder = _cached_set(root, _digest(inputs), inputs)
    note = {"features": features, "n_permutations": settings.n_permutations, "cache": str(folder)}
    if cached is not None:
        note.update(cached=True, seconds=round(time.perf_counter() - t0, 2))
        log.info(
            "feature set %r (%s) read from the on-demand cache %s",
            name,
            ", ".join(features),
            folder,
        )
        return _as_set(cached, name), note
    X = store.train_features[features]
    provenance = {"params": params, "on_demand": True, "cache": inputs}
    _, model, fit = fit_set(
        X, store.train_targets, store.train_types, settings, name, provenance, keep_oof=False
    )
    if fit is not None:  # model mixture / best: the set's own classifiers
        model = with_identity(model, store_identity({name: fit}, store.train_targets.index))
    try:
        save_model_store(model, folder)
    except (InputError, OSError) as exc:  # read-only, full or odd cache: use the set uncached
        log.warning("on-demand cache %s not written (%s): the set is used uncached", folder, exc)
        note["cache"] = None
    seconds = time.perf_counter() - t0
    note.update(cached=False, seconds=round(seconds, 2))
    log.info(
        "feature set %r (%d features: %s) fitted on demand from the store's training tables in "
        "%.0f s (n_permutations=%d), %s",
        name,
        len(features),
        ", ".join(features),
        seconds,
        settings.n_permutations,
        f"cached in {folder}" if note["cache"] else "not cached",
    )
    return _as_set(model, name), note


def _as_set(model: ModelStore, name: str) -> ModelStore:
    """A fitted store of one set as the set ``name`` to add to a store (its identity part
    kept: :func:`~ephys2expr.model.store.add_feature_set` takes the set's classifier)."""
    return ModelStore(
        sets={name: dataclasses.replace(model.primary, name=name)}, identity=model.identity
    )


__all__ = [
    "TYPE_COLUMNS",
    "cache_inputs",
    "cache_key",
    "cache_root",
    "code_md5",
    "fit_feature_set",
    "stored_training_tables",
]
