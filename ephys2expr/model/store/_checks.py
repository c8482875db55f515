"""The checks of a model store's ``model.json``: keys, types, shapes, finite numbers, limits.

Used by :mod:`ephys2expr.model.store._format` when a store is loaded; every failure is one
:class:`~ephys2expr.errors.InputError` line naming the file and the key.
"""

from __future__ import annotations

import json
import math

from ephys2expr.errors import InputError
from ephys2expr.model.intervals import METHODS

# Schemas this code reads (_format.SCHEMA_VERSION is the one it writes).
READABLE_VERSIONS = (2, 3, 4, 5, 6)
META_HASH = "meta_md5"
META = "model.json"
# the tables of a store of schema 5 (train_features: the training rows, for the OOD score)
TRAIN_FEATURES = "train_features.parquet"
# schema 6: the prediction intervals' per-gene quantiles and difficulty models; the
# identity classifiers and class means (empty for a store without them;
# ephys2expr.model.store._identity); the training targets and row metadata (a feature set
# fitted on demand, #21)
INTERVALS = "intervals.parquet"
TRAIN_TARGETS = "train_targets.parquet"
TRAIN_TYPES = "train_types.parquet"
TABLES = (
    "coef.parquet",
    "genes.parquet",
    TRAIN_FEATURES,
    INTERVALS,
    "identity.parquet",
    "class_means.parquet",
    TRAIN_TARGETS,
    TRAIN_TYPES,
)


def tables_of(version: int) -> tuple[str, ...]:
    """The tables a store of schema ``version`` holds (before 5: no ``train_features``;
    before 6: no ``intervals``, identity tables, ``train_targets`` / ``train_types``)."""
    return TABLES if version >= 6 else TABLES[:3] if version == 5 else TABLES[:2]


# Size limits: far above any real store (ours: model.json 3.6 kB, 32,314 genes, 11
# features, tables 4.9 MB), low enough that a damaged or hostile store cannot exhaust
# memory before it is rejected.
MAX_META_BYTES = 16 << 20
MAX_TABLE_BYTES = 4 << 30
MAX_GENES = 1_000_000
MAX_FEATURES = 1_000
MAX_DEPTH = 64  # nesting of model.json (ours: 4)

_VECTORS = ("scaler_mean", "scaler_scale", "feature_min", "feature_max")
_REQUIRED = ("features", "n_genes", "penalty", "l1_ratio", *_VECTORS, "provenance", "files")


class _DuplicateKey(ValueError):
    """A JSON object with a key given twice (``json`` keeps the last one silently)."""


def _unique_keys(pairs: list) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def parse_json(raw: bytes, where: str):
    """JSON of ``raw`` (UTF-8), errors as one line. NaN/Infinity parse; the checks of the
    numbers then name the key that holds them."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise InputError(
            f"{where}: key {exc.args[0]!r} appears twice in one object (which value is meant "
            "is ambiguous; retrain the store or remove one)"
        ) from None
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
    required += (META_HASH,) if version >= 4 else ()
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
    if not isinstance(files, dict) or sorted(files) != sorted(tables_of(version)):
        raise InputError(f"{where}: files must describe exactly {list(tables_of(version))}")
    for name, entry in files.items():
        md5 = entry.get("md5") if isinstance(entry, dict) else None
        if not _is_md5(md5):
            raise InputError(f"{where}: files.{name}.md5 is not an md5 hex digest")
        _check_count(entry.get("bytes"), MAX_TABLE_BYTES, f"{where}: files.{name}.bytes")
    if version >= 4 and not _is_md5(meta[META_HASH]):
        raise InputError(f"{where}: {META_HASH} is not an md5 hex digest")
    if version >= 6:
        _check_intervals(meta.get("intervals"), meta["feature_sets"], f"{where}: intervals")
    return meta


def _check_intervals(entry, sets, what: str) -> None:
    """``{set name: {method, k}}`` for every feature set, or ``{}`` (schema 6)."""
    names = [s["name"] for s in sets]
    if not isinstance(entry, dict) or (entry and sorted(entry) != sorted(names)):
        raise InputError(f"{what} must name exactly the feature sets {names}")
    for name, value in entry.items():
        if not isinstance(value, dict) or value.get("method") not in METHODS:
            raise InputError(f"{what}.{name}.method must be one of {list(METHODS)}")
        if type(value.get("k")) is not int or value["k"] < 0:
            raise InputError(f"{what}.{name}.k must be a non-negative integer")


def _is_md5(value) -> bool:
    return isinstance(value, str) and len(value) == 32 and set(value) <= set("0123456789abcdef")


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
