"""The model store on disk: one folder, written as a unit, content-hashed, checked on load.

Two mechanisms, each covering what the other cannot:

* **Written as a unit.** :func:`write_store` writes all three files into a new hidden
  folder beside the store and swaps it in (:func:`ephys2expr.io.atomic_dir`: one atomic
  ``renameat2`` exchange on Linux, two renames elsewhere). A save killed at any point
  leaves the old store or the new one, never a mix; its temp folder is removed by the
  next save. The loader reads every file through one open handle of the folder, so a swap
  during a load cannot mix either.
* **Verified on load.** ``model.json`` (schema 2 and later) records the md5 and size of both tables;
  the loader hashes the very bytes it parses. A store mixed any other way (a table copied
  in by hand, a partial ``dvc checkout``, a store of schema 1 written file by file) is an
  error naming the store, never a silent mix.

Every check that fails is an :class:`~ephys2expr.errors.InputError` of one line naming the
store folder or its ``model.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import stat
from pathlib import Path

import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.io import atomic_dir, file_checksum, stale_dir_temps, write_json, write_parquet
from ephys2expr.paths import MODELS

# 3: one model per feature set (``feature_sets``; tables indexed by feature set and gene).
# 2 (one set) is still read.
SCHEMA_VERSION = 3
READABLE_VERSIONS = (2, 3)
META = "model.json"
TABLES = ("coef.parquet", "genes.parquet")

# Size limits: far above any real store (ours: model.json 3.6 kB, 32,314 genes, 11
# features, tables 4.9 MB), low enough that a damaged or hostile store cannot exhaust
# memory before it is rejected.
MAX_META_BYTES = 16 << 20
MAX_TABLE_BYTES = 4 << 30
MAX_GENES = 1_000_000
MAX_FEATURES = 1_000
MAX_DEPTH = 64  # nesting of model.json (ours: 4)

# index levels of both tables (schema 3)
SET_INDEX = ["feature_set", "gene"]

_VECTORS = ("scaler_mean", "scaler_scale", "feature_min", "feature_max")
_REQUIRED = ("features", "n_genes", "penalty", "l1_ratio", *_VECTORS, "provenance", "files")


def write_store(directory: str | os.PathLike, meta: dict, tables: dict[str, pd.DataFrame]):
    """Write ``tables`` and ``meta`` (plus schema version and file hashes) as one unit.

    An existing folder is replaced only if it holds nothing but store files, so that a
    wrong ``--model-dir`` cannot delete a folder of other data.
    """
    directory = Path(directory)
    check_replaceable(directory)
    with atomic_dir(directory) as tmp:
        files = {}
        for name in TABLES:
            write_parquet(tables[name], tmp / name)
            md5, size = file_checksum(tmp / name)
            files[name] = {"md5": md5, "bytes": size}
        write_json({**meta, "schema_version": SCHEMA_VERSION, "files": files}, tmp / META)


def check_replaceable(directory: str | os.PathLike) -> None:
    """Raise :class:`InputError` unless :func:`write_store` may write ``directory``: absent,
    or a folder holding only store files (call it before hours of training)."""
    directory = Path(directory)
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

    ``mismatched`` names the tables whose bytes do not match the md5 in ``model.json``;
    the caller reports them together with any more specific problem it finds.
    """
    where = os.fspath(directory)
    meta, blobs = _snapshot(directory, where)
    mismatched = [
        name
        for name in TABLES
        if len(blobs[name]) != meta["files"][name]["bytes"]
        or hashlib.md5(blobs[name]).hexdigest() != meta["files"][name]["md5"]
    ]
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
    for name in TABLES:
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
    """The one-line explanation of tables whose hash differs from ``model.json``'s."""
    return (
        f"{' and '.join(mismatched)} do{'es' if len(mismatched) == 1 else ''} not match the "
        f"md5 recorded in {META}: the store mixes files of different trainings or was "
        "edited; retrain it"
    )


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
            if entry.is_dir() and os.path.isfile(os.path.join(entry.path, META)):
                rel = os.path.relpath(entry.path)
                path = entry.path if rel.startswith("..") else rel
                if path not in found:
                    found.append(path)
    return found


def _read_at(dir_fd: int, name: str, limit: int, where: str) -> bytes | None:
    """The bytes of ``name`` in the open folder (None if absent), refusing above ``limit``."""
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"{where}: cannot open {name} ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{where}: {name} is not a regular file")
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{where}: {name} is larger than the {limit:,} bytes expected")
    return data


def parse_json(raw: bytes, where: str):
    """JSON of ``raw`` (UTF-8), errors as one line. NaN/Infinity parse; the checks of the
    numbers then name the key that holds them."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: unreadable JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply") from None
    except ValueError as exc:  # an integer of thousands of digits
        raise InputError(f"{where}: unreadable JSON ({exc})") from None


def check_meta(meta, where: str) -> dict:
    """Check the keys and types of a parsed ``model.json``; return it."""
    if not isinstance(meta, dict):
        raise InputError(f"{where}: expected a JSON object, got a {type(meta).__name__}")
    _check_depth(meta, where)
    version = meta.get("schema_version")
    if type(version) is not int:
        raise InputError(f"{where}: schema_version {version!r} is not an integer")
    if version == 1:
        raise InputError(
            f"{where}: schema_version 1 (written file by file, without content hashes, so "
            "a mixed store cannot be detected); retrain the store (dvc repro train)"
        )
    if version not in READABLE_VERSIONS:
        raise InputError(
            f"{where}: schema_version {version!r}, this code reads {list(READABLE_VERSIONS)}"
        )
    required = _REQUIRED + (("feature_sets",) if version >= 3 else ())
    missing = [k for k in required if k not in meta]
    if missing:
        raise InputError(f"{where}: missing keys {missing}")
    features = meta["features"]
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise InputError(f"{where}: features must be a list of names")
    if not 0 < len(features) <= MAX_FEATURES:
        raise InputError(f"{where}: {len(features)} features (expected 1 to {MAX_FEATURES})")
    for key in _VECTORS:
        _check_numbers(meta[key], len(features), f"{where}: {key}")
    _check_count(meta["n_genes"], MAX_GENES, f"{where}: n_genes")
    if not isinstance(meta["penalty"], str):
        raise InputError(f"{where}: penalty must be a string, got {meta['penalty']!r}")
    _check_numbers([meta["l1_ratio"]], 1, f"{where}: l1_ratio")
    if version >= 3:
        _check_feature_sets(meta["feature_sets"], features, f"{where}: feature_sets")
    if not isinstance(meta["provenance"], dict):
        raise InputError(f"{where}: provenance must be an object")
    files = meta["files"]
    if not isinstance(files, dict) or sorted(files) != sorted(TABLES):
        raise InputError(f"{where}: files must describe exactly {list(TABLES)}")
    for name, entry in files.items():
        md5 = entry.get("md5") if isinstance(entry, dict) else None
        if not (isinstance(md5, str) and len(md5) == 32 and set(md5) <= set("0123456789abcdef")):
            raise InputError(f"{where}: files.{name}.md5 is not an md5 hex digest")
        _check_count(entry.get("bytes"), MAX_TABLE_BYTES, f"{where}: files.{name}.bytes")
    return meta


def _check_feature_sets(sets, features: list[str], what: str) -> None:
    """A list of ``{name, features}``, the first (the primary: its scaler is the store's)
    using every feature, the others fewer (in the store's order) with their own
    ``scaler_mean`` and ``scaler_scale``; names unique."""
    if not isinstance(sets, list) or not sets:
        raise InputError(f"{what} must be a non-empty list")
    names = []
    for i, entry in enumerate(sets):
        at = f"{what}[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InputError(f"{at} must be an object with a name")
        sub = entry.get("features")
        if not isinstance(sub, list) or not all(isinstance(f, str) for f in sub) or not sub:
            raise InputError(f"{at}.features must be a non-empty list of names")
        if [f for f in features if f in sub] != sub:
            raise InputError(f"{at}.features {sub} are not store features in the store's order")
        if (i == 0) != (sub == features):
            raise InputError(f"{at}: only the first (primary) set uses every feature")
        for key in ("scaler_mean", "scaler_scale") if i else ():
            _check_numbers(entry.get(key), len(sub), f"{at}.{key}")
        names.append(entry["name"])
    if len(set(names)) != len(names):
        raise InputError(f"{what}: names repeat: {names}")


def _check_numbers(values, n: int, what: str) -> None:
    """A JSON list of ``n`` finite numbers (not strings, booleans or nulls)."""
    if not isinstance(values, list) or len(values) != n:
        got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
        raise InputError(f"{what} must be a list of {n} numbers, got {got}")
    for i, v in enumerate(values):
        if type(v) not in (int, float) or not math.isfinite(v):
            raise InputError(f"{what}[{i}] is {v!r}, expected a finite number")


def _check_count(value, limit: int, what: str) -> None:
    if type(value) is not int or not 0 < value <= limit:
        raise InputError(f"{what} is {value!r}, expected an integer from 1 to {limit:,}")


def _check_depth(obj, where: str) -> None:
    """Reject nesting deeper than :data:`MAX_DEPTH` (iteratively: no recursion limit)."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InputError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def join_set_tables(sets: dict, features: list[str]) -> dict[str, pd.DataFrame]:
    """The two tables of a store from ``{set name: (coef, genes)}`` (primary first): indexed
    by ``(feature_set, gene)``, coefficients over all ``features`` (a set's left-out ones
    0.0); :func:`split_feature_sets` reverses it."""
    names = list(sets)
    coef = pd.concat([c.reindex(columns=features, fill_value=0.0) for c, _ in sets.values()],
                     keys=names, names=SET_INDEX)  # fmt: skip
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
        yield entry, c.drop(columns=left_out), genes.xs(entry["name"], level=0)
