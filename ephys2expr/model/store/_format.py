"""The model store on disk: one folder, written as a unit, content-hashed, checked on load.

Two mechanisms, each covering what the other cannot:

* **Written as a unit.** :func:`write_store` writes all three files into a new hidden
  folder beside the store and swaps it in (:func:`ephys2expr.io.atomic_dir`: one atomic
  ``renameat2`` exchange on Linux, two renames elsewhere). A save killed at any point
  leaves the old store or the new one, never a mix; its temp folder is removed by the
  next save. The loader reads every file through one open handle of the folder, so a swap
  during a load cannot mix either.
* **Verified on load.** ``model.json`` (schema 2 and later) records the md5 and size of both
  tables; the loader hashes the very bytes it parses. From schema 4 it also records
  ``meta_md5``, the md5 of its own values (canonical JSON of every other key), so an edited
  ``model.json`` (a changed ``feature_min``, say, which would silently change the
  extrapolation flags) is an error too. A store mixed any other way (a table copied in by
  hand, a partial ``dvc checkout``, a store of schema 1 written file by file) is an error
  naming the store, never a silent mix. Schema 2 and 3 stores still load (their tables
  verified, their ``model.json`` not: a log line says to retrain).

Every check that fails is an :class:`~ephys2expr.errors.InputError` of one line naming the
store folder or its ``model.json``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
from pathlib import Path

import pandas as pd

from ephys2expr.errors import InputError, WriteError
from ephys2expr.io import (
    atomic_dir,
    file_checksum,
    json_md5,
    stale_dir_temps,
    write_json,
    write_parquet,
)
from ephys2expr.model.store._checks import (
    MAX_META_BYTES,
    META,
    META_HASH,
    TABLES,
    check_meta,
    parse_json,
    tables_of,
)
from ephys2expr.paths import MODELS, file_kind

log = logging.getLogger("ephys2expr")

# 6: ``intervals.parquet`` and model.json ``intervals``: the prediction intervals;
#    ``identity.parquet`` and ``class_means.parquet`` (the identity classifiers and class
#    means of a per-cell store; empty otherwise) and model.json ``identity``;
#    ``train_targets.parquet`` and ``train_types.parquet``, the training targets and row
#    metadata (the store is self-contained: predict fits a missing feature set on demand).
# 5: ``train_features.parquet``, the training rows (the out-of-distribution score).
# 4: ``meta_md5``, the md5 of model.json's own values (an edited model.json is detected).
# 3: one model per feature set (``feature_sets``; tables indexed by feature set and gene).
# 2 (one set) and 3 are still read: their tables are verified, their model.json is not
# (READABLE_VERSIONS, with the checks of model.json, in _checks.py).
SCHEMA_VERSION = 6

# index levels of both tables (schema 3)
SET_INDEX = ["feature_set", "gene"]


def write_store(directory: str | os.PathLike, meta: dict, tables: dict[str, pd.DataFrame]):
    """Write ``tables`` and ``meta`` (plus schema version and file hashes) as one unit.

    An existing folder is replaced only if it holds nothing but store files, so that a
    wrong ``--model-dir`` cannot delete a folder of other data.
    """
    directory = Path(directory)
    check_replaceable(directory)
    with atomic_dir(directory) as tmp:
        files = {}
        try:
            for name in TABLES:
                write_parquet(tables[name], tmp / name)
                md5, size = file_checksum(tmp / name)
                files[name] = {"md5": md5, "bytes": size}
            full = {**meta, "schema_version": SCHEMA_VERSION, "files": files}
            write_json({**full, META_HASH: json_md5(full)}, tmp / META)
        except WriteError as exc:  # name the store's file, not the hidden temp folder's
            raise WriteError(directory / Path(exc.path).name, exc.reason) from None


def check_replaceable(directory: str | os.PathLike) -> None:
    """Raise :class:`InputError` unless :func:`write_store` may write ``directory``: absent,
    or a folder holding only store files (call it before hours of training)."""
    directory = Path(directory)
    if directory.is_symlink():  # checked again by atomic_dir; here before any training
        raise InputError(
            f"{directory}: is a symbolic link (to {os.path.realpath(directory)}); a model store "
            "is never written through a link: name the real folder, or remove the link"
        )
    if not directory.exists():
        return
    if not directory.is_dir():
        raise InputError(f"{directory}: exists and is not a folder; cannot write a model store")
    # hidden *.tmp: the per-file temp files that stores of schema 1 could leave behind
    foreign = sorted(
        entry
        for entry in os.listdir(directory)
        if entry not in (META, *TABLES) and not (entry.startswith(".") and entry.endswith(".tmp"))
    )
    if foreign:
        raise InputError(
            f"{directory}: holds {foreign[0]!r}, which is not part of a model store; "
            "refusing to replace the folder (give --model-dir a folder of its own)"
        )


def read_store(directory: str | os.PathLike) -> tuple[dict, dict[str, pd.DataFrame], list[str]]:
    """``(meta, tables, mismatched)`` of a store folder, ``meta`` checked.

    ``mismatched`` names the tables whose bytes do not match the md5 in ``model.json``,
    and ``model.json`` itself if its values do not match its ``meta_md5`` (schema 4); the
    caller reports them together with any more specific problem it finds.
    """
    where = os.fspath(directory)
    meta, blobs = _snapshot(directory, where)
    mismatched = [
        name
        for name in blobs
        if len(blobs[name]) != meta["files"][name]["bytes"]
        or hashlib.md5(blobs[name]).hexdigest() != meta["files"][name]["md5"]
    ]
    if meta["schema_version"] >= 4:
        if json_md5({k: v for k, v in meta.items() if k != META_HASH}) != meta[META_HASH]:
            mismatched.append(META)
    else:
        log.warning(
            "%s: model store of schema %d: its tables are verified, its %s is not (edits "
            "to it go unnoticed); retrain it (dvc repro train) to get schema %d",
            where,
            meta["schema_version"],
            META,
            SCHEMA_VERSION,
        )
    tables = {}
    for name, blob in blobs.items():
        try:
            tables[name] = pd.read_parquet(io.BytesIO(blob))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for bad bytes
            note = f"; {mismatch_note(mismatched)}" if mismatched else ""
            raise InputError(
                f"{where}: {name} is not a readable Parquet table ({type(exc).__name__}: "
                f"{exc}){note}"
            ) from None
    return meta, tables, mismatched


def _snapshot(directory, where: str, attempts: int = 3) -> tuple[dict, dict[str, bytes]]:
    """``model.json`` (checked) and the tables' bytes, all read through one handle of the
    folder, so that a save swapping in a new folder meanwhile cannot mix them. If that
    save also deleted the old folder's files before they were read, read the new one."""
    for attempt in range(attempts):
        try:
            fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except (FileNotFoundError, NotADirectoryError):
            raise InputError(
                f"{where}: not a model store (no such folder){_hint(directory)}"
            ) from None
        except OSError as exc:
            raise InputError(f"{where}: cannot open the model store ({exc.strerror})") from None
        try:
            return _read_files(fd, directory, where)
        except InputError:
            if attempt + 1 == attempts or not _replaced(fd, directory):
                raise
        finally:
            os.close(fd)
    raise AssertionError("unreachable")  # pragma: no cover


def _read_files(fd: int, directory, where: str) -> tuple[dict, dict[str, bytes]]:
    raw = _read_at(fd, META, MAX_META_BYTES, where)
    if raw is None:
        raise InputError(f"{where}: not a model store (no {META}){_hint(directory)}")
    meta_where = os.path.join(where, META)
    meta = check_meta(parse_json(raw, meta_where), meta_where)
    blobs = {}
    for name in tables_of(meta["schema_version"]):
        blobs[name] = _read_at(fd, name, meta["files"][name]["bytes"], where)
        if blobs[name] is None:
            raise InputError(f"{where}: {name} is missing (retrain the store)")
    return meta, blobs


def _replaced(fd: int, directory) -> bool:
    """Whether ``directory`` now names another folder than the open handle ``fd``."""
    try:
        now = os.stat(directory)
    except OSError:  # between the two renames of a swap: the new folder is on its way
        return True
    then = os.fstat(fd)
    return (now.st_ino, now.st_dev) != (then.st_ino, then.st_dev)


def mismatch_note(mismatched: list[str]) -> str:
    """The one-line explanation of files whose hash differs from what ``model.json`` records
    (the tables' md5, its own ``meta_md5``)."""
    tables = [m for m in mismatched if m != META]
    parts = []
    if tables:
        parts.append(
            f"{' and '.join(tables)} do{'es' if len(tables) == 1 else ''} not match the md5 "
            f"recorded in {META}: the store mixes files of different trainings or was edited"
        )
    if META in mismatched:
        parts.append(
            f"{META} does not match the {META_HASH} it records: its values were edited "
            "(e.g. feature_min/feature_max, which decide the extrapolation flags) or damaged"
        )
    return "; ".join(parts) + "; retrain it (dvc repro train)"


def _hint(directory) -> str:
    """Why a store may be missing (a save killed between the two renames of a swap), or
    which stores exist beside it and in ``data/models``."""
    if stale_dir_temps(directory):
        return (
            "; a save is running or was interrupted (its temp folders are beside it): "
            "load again or rerun train"
        )
    stores = existing_stores(os.path.dirname(os.path.abspath(directory)), MODELS)
    return f"; model stores here: {', '.join(stores)}" if stores else "; no model store found"


def existing_stores(*folders) -> list[str]:
    """The model store folders (holding a ``model.json``) inside ``folders``, as paths
    relative to the current folder where possible."""
    found = []
    for folder in folders:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:  # a sibling that is a broken link or a link loop is no store, not an error
                is_store = entry.is_dir() and os.path.isfile(os.path.join(entry.path, META))
            except OSError:
                is_store = False
            if is_store:
                rel = os.path.relpath(entry.path)
                path = entry.path if rel.startswith("..") else rel
                if path not in found:
                    found.append(path)
    return found


def _read_at(dir_fd: int, name: str, limit: int, where: str) -> bytes | None:
    """The bytes of ``name`` in the open folder (None if absent), refusing above ``limit``."""
    # Only regular files (a symlink to one is fine: DVC's symlink cache mode). A FIFO or a
    # device would block the open or the read forever: checked before opening, and opened
    # non-blocking in case it is swapped in between, then checked again.
    try:
        mode = os.stat(name, dir_fd=dir_fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(f"{where}: {name} is not a regular file ({file_kind(mode)})")
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0), dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"{where}: cannot open {name} ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputError(f"{where}: {name} is not a regular file ({file_kind(mode)})")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{where}: {name} is larger than the {limit:,} bytes expected")
    return data


def join_set_tables(sets: dict, features: list[str]) -> dict[str, pd.DataFrame]:
    """The two tables of a store from ``{set name: (coef, genes)}`` (primary first): indexed
    by ``(feature_set, gene)``, coefficients over all ``features`` (a set's left-out ones
    0.0); :func:`split_feature_sets` reverses it."""
    names = list(sets)
    coef = pd.concat(
        [c.reindex(columns=features, fill_value=0.0) for c, _ in sets.values()],
        keys=names,
        names=SET_INDEX,
    )
    genes = pd.concat([g for _, g in sets.values()], keys=names, names=SET_INDEX)
    return {"coef.parquet": coef, "genes.parquet": genes}


def split_feature_sets(meta: dict, coef: pd.DataFrame, genes: pd.DataFrame):
    """``(set entry, coef, genes)`` per feature set of a store's tables as read (schema 2:
    one set, ``full``), each entry with its ``name``, ``features`` and scaler; a set's
    tables lose the left-out feature columns, which must hold exact zeros."""
    primary = {"scaler_mean": meta["scaler_mean"], "scaler_scale": meta["scaler_scale"]}
    if meta["schema_version"] == 2:
        yield {"name": "full", "features": meta["features"], **primary}, coef, genes
        return
    sets = [e["name"] for e in meta["feature_sets"]]
    for label, table in (("coef", coef), ("genes", genes)):
        if list(table.index.names) != SET_INDEX:
            raise InputError(f"model store: {label} table is not indexed by {SET_INDEX}")
        found = list(pd.unique(table.index.get_level_values(0)))
        if found != sets:
            raise InputError(
                f"model store: {label} table holds feature sets {found}, model.json lists {sets}"
            )
    for i, entry in enumerate(meta["feature_sets"]):
        entry = {**entry, **primary} if i == 0 else entry
        c = coef.xs(entry["name"], level=0)
        # columns of the store's features that this set leaves out (any other column stays,
        # for the store's own check to name)
        left_out = [f for f in meta["features"] if f not in entry["features"] and f in c.columns]
        used = (c[left_out].to_numpy(dtype=float) != 0).any(axis=0)
        if used.any():
            raise InputError(
                f"model store: feature set {entry['name']!r} leaves out "
                f"{left_out[int(used.argmax())]!r} but has non-zero coefficients for it"
            )
        # a column only some sets have (the null's q_value, significant: a set trained without
        # it) is NaN for the others on disk, so the sets' rows share an object column; each
        # set gets its own dtypes back (bool for a set with the null, float NaN without)
        yield entry, c.drop(columns=left_out), genes.xs(entry["name"], level=0).infer_objects()
