"""Tables of the Allen Institute's ipfx feature pipeline -> the project's features.

Allen-style Patch-seq papers publish their per-cell features with the names of the ipfx
feature extractor (``v_baseline``, ``input_resistance``, ``tau`` in seconds, ``width_rheo``
in seconds, ``threshold_v_rheo``, ``peak_v_rheo``, ``fast_trough_v_rheo``, ``rheobase_i``,
``avg_rate_max``, ``sag``, ...; the human L1 tables of Chartrand et al. 2023 and the L2/3
tables of Berg et al. 2021, whose spike features are taken at the long-square rheobase sweep
as ``*_long_square`` and relative to threshold as ``*_rel``). :data:`IPFX_SOURCES` lists,
per project feature (:mod:`ephys2expr.features`), the ipfx columns it can come from, first
match wins; :func:`read_ipfx_features` converts the units (s -> ms), derives ``cap`` =
1000 * tau / rin as :mod:`ephys2expr.readers.derive` does for the Allen Cell Types tables,
and names the features it could not derive. ``adratio`` (Allen's first/mean ISI ratio) and
``avg_isi`` have no ipfx counterpart in these tables (``adapt_mean`` is another quantity).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.features import ALL_FEATURES, PLAUSIBLE_RANGE
from ephys2expr.readers.columns import numeric_column

# feature -> candidate sources, first whose columns are all present wins: (kind, columns)
# with kind "value" (the column itself), "ms" (seconds -> ms), "diff" (a - b), "neg"
# (minus the column: a trough relative to threshold)
IPFX_SOURCES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "rmp": [("value", ("v_baseline",)), ("value", ("vrest",))],
    "rin": [("value", ("input_resistance",)), ("value", ("ri",))],
    "tau": [("ms", ("tau",))],
    "apthr": [("value", ("threshold_v_rheo",)), ("value", ("threshold_v_long_square",))],
    "apamp": [
        ("diff", ("peak_v_rheo", "threshold_v_rheo")),
        ("value", ("peak_v_long_square_rel",)),
        ("diff", ("peak_v_long_square", "threshold_v_long_square")),
    ],
    "ahpamp": [
        ("diff", ("threshold_v_rheo", "fast_trough_v_rheo")),
        ("neg", ("fast_trough_v_long_square_rel",)),
        ("diff", ("threshold_v_long_square", "fast_trough_v_long_square")),
    ],
    "aphw": [("ms", ("width_rheo",)), ("ms", ("width_long_square",))],
    "rheo": [("value", ("rheobase_i",)), ("value", ("threshold_i_long_square",))],
    "maxfreq": [("value", ("avg_rate_max",)), ("value", ("max_rate_long_square",))],
    "sag": [("value", ("sag",))],
    "f_i_curve_slope": [("value", ("fi_fit_slope",)), ("value", ("f_i_curve_slope",))],
    "latency": [("value", ("latency_rheo",))],
}
# columns whose presence marks a table as ipfx output (detection)
SIGNATURE = ("v_baseline", "input_resistance", "tau")
ID_CANDIDATES = ("cell_id", "cell_name", "specimen_id", "SpecimenID", "sample_id")


def is_ipfx_table(columns) -> bool:
    """Does a table with these columns look like ipfx output (and not the project's own)?"""
    cols = set(map(str, columns))
    return all(c in cols for c in SIGNATURE) and "rin" not in cols


def _one(table: pd.DataFrame, kind: str, cols: tuple, where: str) -> pd.Series:
    v = [numeric_column(table, c, where) for c in cols]
    if kind == "ms":
        return 1000.0 * v[0]
    if kind == "diff":
        return v[0] - v[1]
    if kind == "neg":
        return -v[0]
    return v[0]


def read_ipfx_features(table: pd.DataFrame, where: str) -> tuple[pd.DataFrame, dict]:
    """The project's 15 features from an ipfx table.

    Parameters
    ----------
    table : DataFrame
        One row per cell, ipfx column names (other columns are ignored).
    where : str
        The file, for error messages.

    Returns
    -------
    (features, report)
        ``features``: columns :data:`~ephys2expr.features.ALL_FEATURES` (float64, NaN where
        not derivable), same index. ``report``: ``sources`` (feature -> the ipfx columns
        used), ``not_derived`` (features no column gave), ``zero_as_missing`` (feature ->
        cells whose 0 of a feature that must be > 0 became missing).
    """
    out, sources = {}, {}
    for feature, options in IPFX_SOURCES.items():
        for kind, cols in options:
            if all(c in table.columns for c in cols):
                out[feature] = _one(table, kind, cols, where)
                sources[feature] = list(cols)
                break
    if "tau" in out and "rin" in out:
        with np.errstate(divide="ignore", invalid="ignore"):
            out["cap"] = out["tau"] / out["rin"] * 1000.0
        sources["cap"] = ["tau", sources["rin"][0]]
    if not out:
        raise InputError(f"{where}: no ipfx feature column found (e.g. {list(SIGNATURE)})")
    feats = pd.DataFrame(out, index=table.index).reindex(columns=ALL_FEATURES).astype(float)
    not_derived = [f for f in ALL_FEATURES if f not in out]
    # ipfx writes 0 for a width or time constant it could not measure (a Tamas-lab cell has
    # width_rheo 0): for a feature that must be > 0 that is a missing value, counted
    zeros = {}
    for f in feats.columns:
        if PLAUSIBLE_RANGE[f].low_open and PLAUSIBLE_RANGE[f].low == 0:
            hit = feats[f] == 0
            if hit.any():
                zeros[f] = int(hit.sum())
                feats.loc[hit, f] = np.nan
    return feats, {"sources": sources, "not_derived": not_derived, "zero_as_missing": zeros}


def ipfx_cells(table: pd.DataFrame, where: str, id_column: str = "cell_id") -> tuple:
    """An ipfx table as a per-cell feature table: column ``id_column`` (the table's own, or
    the first of :data:`ID_CANDIDATES` present), the 15 features, and the table's other
    text columns (metadata). Returns ``(table, report)`` (:func:`read_ipfx_features`)."""
    ids = next((c for c in (id_column, *ID_CANDIDATES) if c in table.columns), None)
    if ids is None:
        raise InputError(
            f"{where}: an ipfx table without an id column (one of {[id_column, *ID_CANDIDATES]})"
        )
    feats, report = read_ipfx_features(table, where)
    used = {c for cols in report["sources"].values() for c in cols} | {ids}
    meta = [
        c
        for c in table.columns
        if c not in used and c not in feats.columns and not pd.api.types.is_numeric_dtype(table[c])
    ]
    cells = pd.concat([table[[ids]].set_axis([id_column], axis=1), feats, table[meta]], axis=1)
    report["id_column"] = ids
    return cells.reset_index(drop=True), report


__all__ = [
    "ID_CANDIDATES",
    "IPFX_SOURCES",
    "SIGNATURE",
    "ipfx_cells",
    "is_ipfx_table",
    "read_ipfx_features",
]
