"""Readers of the cell-type training tables and of the Entrez symbol table."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.features import ALL_FEATURES, CORE_FEATURES
from ephys2expr.readers.columns import check_unique, numeric_column, read_csv_table
from ephys2expr.readers.r import read_r
from ephys2expr.readers.symbols import SymbolRestoration, restore_symbols


@dataclass
class TrainingSet:
    """Cell-type means: features, log2 expression targets, type metadata."""

    features: pd.DataFrame  # types x features
    targets: pd.DataFrame  # genes x types, log2 expression
    types: pd.DataFrame  # types x (cre_line, layer, broad_type, n_cells_expr, ...)
    restoration: SymbolRestoration | None = None
    notes: dict = field(default_factory=dict)


# The lab's table's columns that describe a type; every other non-feature column is a gene.
_TYPE_METADATA = {
    "sample.name",
    "layer_coarse",
    "broad_type",
    "colors",
    "num_cells_expr",
    "num_cells_ephys",
    "prop_exc",
    "sample_size_weights",
    "weights",
    "broad_type_colors",
}


def read_training_rds(path, reference_symbols: list[str]) -> TrainingSet:
    """Read the Pavlidis lab's cell-type table (``aibs_cre_expr_ephys.rda``).

    Gene columns hold 2^(mean log2(TPM+1)) per type; targets are their log2. Gene
    names mangled by R's ``make.names`` are restored with ``reference_symbols``
    (see :func:`~ephys2expr.readers.symbols.restore_symbols`).
    """
    where = os.fspath(path)
    table = read_r(path)
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"{where}: expected a data frame, got {type(table).__name__}")
    if "sample.name" not in table.columns:
        raise InputError(f"{where}: missing column 'sample.name'")
    table = table.copy()
    table.index = pd.Index(table["sample.name"].astype(str), name="cell_type")
    check_unique(table.index, "cell type", where)
    missing = [f for f in CORE_FEATURES if f not in table.columns]
    if missing:
        raise InputError(f"{where}: missing feature column(s) {missing}")
    features = pd.DataFrame(
        {f: numeric_column(table, f, where) for f in CORE_FEATURES}, index=table.index
    )
    gene_cols = [c for c in table.columns if c not in _TYPE_METADATA and c not in CORE_FEATURES]
    dtypes = table.dtypes[gene_cols]
    non_numeric = [c for c, t in dtypes.items() if not pd.api.types.is_numeric_dtype(t)]
    if non_numeric:
        raise InputError(f"{where}: non-numeric gene column '{non_numeric[0]}'")
    values = table[gene_cols].to_numpy(dtype=float)
    if np.nanmin(values) <= 0:
        raise InputError(f"{where}: non-positive expression value; expected 2^mean(log2(TPM+1))")
    restoration = restore_symbols([str(c) for c in gene_cols], reference_symbols)
    targets = pd.DataFrame(
        np.log2(values).T,
        index=pd.Index(restoration.symbols, name="gene"),
        columns=table.index,
    )
    check_unique(targets.index, "gene", where)
    name_parts = table.index.str.split("_")
    types = pd.DataFrame(
        {
            "cre_line": [p[0] for p in name_parts],
            "layer": table["layer_coarse"].astype(str).to_numpy(),
            "broad_type": table["broad_type"].astype(str).to_numpy(),
            "n_cells_expr": table["num_cells_expr"].astype(float).to_numpy(),
            "n_cells_ephys": table["num_cells_ephys"].astype(float).to_numpy(),
            "weight": table["weights"].astype(float).to_numpy(),
        },
        index=table.index,
    )
    notes = {"original_gene_names": [str(c) for c in gene_cols]}
    return TrainingSet(features, targets, types, restoration, notes)


_OT3_FEATURE_NAMES = {"ri": "rin"}  # Online Table 3 spells input resistance "ri"


def read_online_table3(path, entrez_symbols: pd.Series) -> TrainingSet:
    """Read Bomkamp et al. 2019 Online Table 3 (or an excerpt in its layout).

    Layout: first header cell empty, then one column per cell type named
    ``<cre line>__<layer>__<inh|exc>``; rows are the 15 ephys properties, then Entrez
    Gene IDs with log2 expression. Entrez IDs are mapped to symbols; IDs without a
    symbol keep ``Entrez:<id>`` so no gene is lost. ``cap`` is tau/ri there (nF) and is
    converted to pF (x1000) to match the per-cell features.
    """
    where = os.fspath(path)
    # pandas renames a repeated header cell ("X" -> "X.1"), so repeats are found in the raw
    # header; a renamed copy would otherwise surface as a class "inh.1"
    header = read_csv_table(path, header=None, nrows=1, dtype=str).iloc[0, 1:]
    check_unique(pd.Index(header.astype(str).str.strip()), "cell type column", where)
    table = read_csv_table(path, index_col=0, dtype={0: str})
    table.index = table.index.astype(str).str.strip()
    check_unique(table.index, "row", where)
    for col in table.columns:
        table[col] = numeric_column(table, col, where)
    bad_types = [c for c in table.columns if len(str(c).split("__")) != 3]
    if bad_types:
        raise InputError(f"{where}: column {bad_types[0]!r} is not <cre>__<layer>__<inh|exc>")
    is_gene = table.index.str.fullmatch(r"[0-9]+")
    props = table[~is_gene].rename(index=_OT3_FEATURE_NAMES)
    unknown = [p for p in props.index if p not in ALL_FEATURES]
    if unknown:
        raise InputError(f"{where}: unknown property row(s) {unknown}")
    if "cap" in props.index:
        props.loc["cap"] = props.loc["cap"] * 1000.0
    features = props.T
    features.index.name = "cell_type"
    genes = table[is_gene]
    ids = genes.index.astype(np.int64)
    symbols = [entrez_symbols.get(i, f"Entrez:{i}") for i in ids]
    targets = pd.DataFrame(
        genes.to_numpy(dtype=float), index=pd.Index(symbols, name="gene"), columns=features.index
    )
    n_unmapped = sum(s.startswith("Entrez:") for s in symbols)
    # Two Entrez IDs may share a symbol: keep the first, report the rest.
    dup = targets.index.duplicated()
    targets = targets[~dup]
    parts = [str(c).split("__") for c in features.index]
    types = pd.DataFrame(
        {
            "cre_line": [p[0] for p in parts],
            "layer": [p[1] for p in parts],
            "broad_type": [p[2].capitalize() for p in parts],
            "n_cells_expr": np.nan,
            "n_cells_ephys": np.nan,
            "weight": 1.0,
        },
        index=features.index,
    )
    if not set(types["broad_type"]) <= {"Inh", "Exc"}:
        raise InputError(f"{where}: class must be inh or exc, got {sorted(set(types.broad_type))}")
    notes = {"entrez_unmapped": n_unmapped, "duplicate_symbols_dropped": int(dup.sum())}
    return TrainingSet(features, targets, types, None, notes)


def read_entrez_symbols(path) -> pd.Series:
    """Entrez Gene ID (int) -> symbol, from a two-column headerless CSV."""
    table = read_csv_table(path, header=None, names=["entrez", "symbol"], dtype=str)
    ids = pd.to_numeric(table["entrez"], errors="coerce")
    if ids.isna().any():
        bad = table.loc[ids.isna(), "entrez"].iloc[0]
        raise InputError(f"{path}: non-numeric Entrez ID {bad!r} in column 1")
    if ids.duplicated().any():
        raise InputError(f"{path}: duplicate Entrez ID {int(ids[ids.duplicated()].iloc[0])}")
    return pd.Series(table["symbol"].to_numpy(), index=ids.astype(np.int64).to_numpy())
