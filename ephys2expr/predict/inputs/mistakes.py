"""Likely mistakes in a table to predict: one warning line each that names the fix.

A table can pass every check (numbers, plausible ranges, ids) and still be wrong in a way
that silently changes the predictions. :func:`likely_mistakes` finds what the adversarial
run of issue #32 found accepted with exit 0:

* a feature whose median is about 1000x off the training rows' (tau or half-width in
  seconds, rheobase in nA, capacitance in F: 0.001 ms is inside the plausible range), with
  the unit its values are likely in (:data:`ephys2expr.features.FEATURE_UNITS`);
* a column that almost names a feature (``rin `` with a space, ``RIN``, ``ap_thr``) or is
  one of its other names (``input_resistance``, :data:`~ephys2expr.features.FEATURE_ALIASES`),
  where the feature itself is not a column: the cells were predicted without it;
* rows that all end in an extra delimiter (read without it, not shifted);
* a feature of the store missing from every cell (no column, or a column with no value).

:func:`report_mistakes` logs each as one warning, or, with ``predict.strict``, raises the
first as an :class:`~ephys2expr.errors.InputError`. Columns the run does not use (neither
a feature of the store nor metadata) are listed in one more warning, never an error.
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.features import (
    FEATURE_ALIASES,
    FEATURE_DESCRIPTIONS,
    FEATURE_UNITS,
    PAIRED_FEATURES,
)
from ephys2expr.recordings.columns import is_recording_column

log = logging.getLogger("ephys2expr.predict")

# A feature's median this many times off the training rows' is a likely unit mistake
# (real batches differ far less: the Allen v6 cells' medians are within 2x of the type
# means' for every feature).
SCALE_FACTOR = 100.0
MIN_VALUES = 3  # fewer values of a feature in the table: no median to judge
TRAILING_DELIMITER = "trailing_delimiter"  # the reader's flag in DataFrame.attrs

_PREFIXES = {
    9: ("G", "giga"),
    6: ("M", "mega"),
    3: ("k", "kilo"),
    0: ("", ""),
    -3: ("m", "milli"),
    -6: ("u", "micro"),
    -9: ("n", "nano"),
    -12: ("p", "pico"),
    -15: ("f", "femto"),
}
_UNIT_WORDS = {
    "s": "seconds",
    "V": "volts",
    "Ohm": "ohms",
    "A": "amperes",
    "F": "farads",
    "Hz": "hertz",
}


def normalise_name(name: object) -> str:
    """A column name without case, spaces and separators (``' AP_Thr '`` -> ``apthr``)."""
    return re.sub(r"[\s_\-./]+", "", str(name).strip().lower())


def unit_name(feature: str, exponent: int) -> str:
    """``nA (nanoamperes)``: the unit of ``feature`` with SI prefix ``exponent``."""
    symbol, word = FEATURE_UNITS[feature][1], _UNIT_WORDS[FEATURE_UNITS[feature][1]]
    prefix, prefix_word = _PREFIXES[exponent]
    return f"{prefix}{symbol} ({prefix_word}{word})"


def scale_mistake(feature: str, median: float, train_median: float) -> str | None:
    """The warning for a median ``SCALE_FACTOR`` or more times off the training's, or None.

    With a unit (:data:`FEATURE_UNITS`) it names the unit the values are likely in: the
    nearest power of 1000 of the ratio (0.001 x the training's tau: seconds, not ms).
    """
    if not (math.isfinite(median) and math.isfinite(train_median)) or train_median == 0:
        return None
    ratio = median / train_median
    if ratio <= 0 or 1 / SCALE_FACTOR < ratio < SCALE_FACTOR:
        return None
    power = math.log10(ratio)
    what = (
        f"column '{feature}' ({FEATURE_DESCRIPTIONS[feature]}): its median {median:.4g} is "
        f"{10 ** abs(power):,.0f}x {'below' if power < 0 else 'above'} the training rows' "
        f"{train_median:.4g}"
    )
    step = 3 * round(power / 3) or (3 if power > 0 else -3)
    base, _ = FEATURE_UNITS.get(feature, (None, None))
    likely = None if base is None else base - step
    if likely in _PREFIXES:
        factor = 10.0 ** abs(step)
        how = "multiply" if step < 0 else "divide"
        return (
            f"{what}: values in {unit_name(feature, likely)} rather than "
            f"{unit_name(feature, base).split(' ')[0]}? {how} them by {factor:,.0f}"
        )
    return f"{what}: in another unit or scale? Convert it to {FEATURE_DESCRIPTIONS[feature]}"


def near_matches(columns, features: list[str]) -> dict[str, str]:
    """``{column: feature}`` for columns that almost name a feature of ``features`` that is
    not a column itself: same name up to case, spaces and separators, or one of its other
    names (:data:`FEATURE_ALIASES`)."""
    present = {str(c) for c in columns}
    wanted = {normalise_name(f): f for f in features if f not in present}
    out = {}
    for col in columns:
        if str(col) in features:
            continue
        key = normalise_name(col)
        feature = wanted.get(key) or FEATURE_ALIASES.get(key)
        if feature in wanted.values() and feature not in out.values():
            out[str(col)] = feature
    return out


def likely_mistakes(
    cells: pd.DataFrame, values: pd.DataFrame, store_features: list[str], train: pd.DataFrame | None
) -> list[str]:
    """The likely mistakes of one table (messages without the file name; see module doc).

    Parameters
    ----------
    cells : DataFrame
        The table as read (every column but the id); ``attrs[TRAILING_DELIMITER]`` set by
        the reader when every row ended in a delimiter.
    values : DataFrame
        The store's features the table has, as float64 (``check_feature_columns``).
    store_features : list of str
        The store's features.
    train : DataFrame or None
        The store's training rows (original units); None for old stores (no scale check).
    """
    found = []
    if cells.attrs.get(TRAILING_DELIMITER):
        found.append(
            "every data row ends in an extra delimiter (one more field than the header); "
            "read without it, columns as the header names them: remove the trailing delimiter"
        )
    near = near_matches(cells.columns, store_features)
    for col, feature in near.items():
        found.append(
            f"column {col!r} is not used, but looks like the feature '{feature}' "
            f"({FEATURE_DESCRIPTIONS[feature]}); the cells were predicted without it: rename "
            f"the column to '{feature}' if it is that"
        )
    for feature in store_features:
        if feature in near.values():
            continue  # said above
        if feature not in values.columns:
            why = "is not a column"
        elif values[feature].isna().all():
            why = "has no value in any cell"
        else:
            continue
        found.append(
            f"the model's feature '{feature}' ({FEATURE_DESCRIPTIONS[feature]}) {why}: no cell "
            "is predicted with it; add it, or ignore this if it was not measured"
        )
    if train is not None:
        for feature in values.columns:
            mine = values[feature].dropna()
            if len(mine) < MIN_VALUES or feature not in train.columns:
                continue
            message = scale_mistake(
                feature, float(np.median(mine)), float(np.median(train[feature].dropna()))
            )
            if message:
                found.append(message)
    return found


def unused_columns(cells: pd.DataFrame, store_features: list[str], metadata: list[str]) -> list:
    """Columns that are neither a feature of the store, nor metadata, nor a near match."""
    near = near_matches(cells.columns, store_features)
    used = set(store_features) | set(metadata) | set(near)
    return [c for c in cells.columns if str(c) not in used and not is_recording_column(c)]


def report_mistakes(
    where: str,
    cells: pd.DataFrame,
    values: pd.DataFrame,
    store_features: list[str],
    train: pd.DataFrame | None,
    metadata: list[str],
    strict: bool = False,
) -> list[str]:
    """Log each likely mistake as one warning naming ``where`` (the file), and the unused
    columns in one more line; with ``strict`` the first mistake is an
    :class:`InputError` instead. Returns the messages."""
    found = likely_mistakes(cells, values, store_features, train)
    if strict and found:
        raise InputError(f"{where}: {found[0]} (predict.strict: true)")
    for message in found:
        log.warning("%s: %s", where, message)
    unused = unused_columns(cells, store_features, metadata)
    known = [c for c in unused if c in PAIRED_FEATURES]
    other = [c for c in unused if c not in PAIRED_FEATURES]
    if known:
        log.info("%s: features this model store does not use: %s", where, ", ".join(known))
    if other:
        names = ", ".join(repr(str(c)) for c in other[:20])
        more = f" ... ({len(other)} in all)" if len(other) > 20 else ""
        log.warning(
            "%s: %d column(s) not used (neither a feature of the model store nor metadata): %s%s",
            where,
            len(other),
            names,
            more,
        )
    return found


__all__ = [
    "SCALE_FACTOR",
    "TRAILING_DELIMITER",
    "likely_mistakes",
    "near_matches",
    "normalise_name",
    "report_mistakes",
    "scale_mistake",
    "unit_name",
    "unused_columns",
]
