"""Reader of the Allen Cell Types per-cell tables (v6 and v10 layouts)."""

from __future__ import annotations

import os
import re

import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.readers.columns import read_csv_table
from ephys2expr.readers.derive import derive_features


def _layer_from_region(region: str) -> str:
    match = re.search(r"(1|2/3|4|5|6a|6b|6)$", str(region))
    return match.group(1) if match else ""


def read_allen_cells(path, absent: tuple[str, ...] = ()) -> tuple[pd.DataFrame, dict]:
    """Read an Allen Cell Types per-cell table (v6 or v10 layout) into metadata + features.

    Returns the table (index ``cell_id``; columns ``cre_line``, ``layer``,
    ``dendrite_type``, ``species``, ``brain_region``, then :data:`ALL_FEATURES`) and a
    report. Rows repeated with identical ephys (v10 lists some cells once per
    morphology reconstruction) are collapsed and counted; repeated ids with
    different ephys are an error.
    """
    where = os.fspath(path)
    raw = read_csv_table(path, low_memory=False)
    if raw.empty:
        raise InputError(f"{where}: no rows")
    if "specimen_id" not in raw.columns:
        raise InputError(f"{where}: missing id column 'specimen_id'")
    if "species" in raw.columns:  # v10 layout
        species = raw["species"].map({"Mus musculus": "mouse", "Homo Sapiens": "human"})
        meta = pd.DataFrame(
            {
                "cre_line": raw.get("transgenic_line", pd.Series("", index=raw.index)),
                "layer": raw.get("structure_layer_name", pd.Series("", index=raw.index)),
                "dendrite_type": raw.get("dendrite_type"),
                "species": species.fillna(raw["species"]),
                "brain_region": raw.get("structure_area_abbrev"),
            }
        )
    else:  # v6 layout: mouse only
        for col in ("mouse_line", "brain_region", "spines"):
            if col not in raw.columns:
                raise InputError(f"{where}: missing metadata column '{col}'")
        meta = pd.DataFrame(
            {
                "cre_line": raw["mouse_line"],
                "layer": raw["brain_region"].map(_layer_from_region),
                "dendrite_type": raw["spines"],
                "species": "mouse",
                "brain_region": raw["brain_region"],
            }
        )
    meta = meta.astype(object).where(meta.notna(), "").astype(str)
    features = derive_features(raw, where, absent=absent)
    ids = raw["specimen_id"].astype(str).str.strip()
    cells = pd.concat([meta, features], axis=1)
    cells.index = pd.Index(ids, name="cell_id")
    report = {"rows": len(cells), "duplicate_rows_collapsed": 0}
    if cells.index.has_duplicates:
        dup_ids = cells.index[cells.index.duplicated()].unique()
        for cid in dup_ids:
            rows = cells.loc[[cid]]
            if len(rows.drop_duplicates()) > 1:
                raise InputError(f"{where}: duplicate specimen_id {cid} with different ephys")
        report["duplicate_rows_collapsed"] = int(cells.index.duplicated().sum())
        cells = cells[~cells.index.duplicated(keep="first")]
    return cells, report
