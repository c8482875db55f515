"""Readers for the raw inputs: R data files, the training tables, Allen per-cell tables.

Every reader raises :class:`~ephys2expr.errors.InputError` with the file name and the
offending column or value, never a traceback from deep inside a parser.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.features import ALL_FEATURES, CORE_FEATURES, derive_features, numeric_column
from ephys2expr.genes import SymbolRestoration, restore_symbols


def read_r(path: str | os.PathLike, name: str | None = None):
    """Read an R data file, whether ``saveRDS`` (RDS) or ``save`` (RData) wrote it.

    The file extension is not trusted (several ``.rda`` files here are RDS). For RData,
    ``name`` selects the object (default: the only non-hidden one).
    """
    import rdata

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(2, "No such file", path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns when the extension is "wrong"
        try:
            with open(path, "rb") as fh:
                head = fh.read(2)
            parsed = rdata.parser.parse_file(path)
            converted = rdata.conversion.convert(parsed)
        except Exception as exc:  # truncated gzip, not an R file, ...
            kind = "gzip" if head == b"\x1f\x8b" else "R data"
            raise InputError(
                f"{path}: unreadable {kind} file ({type(exc).__name__}: {exc})"
            ) from None
    if isinstance(converted, dict):
        objects = {k: v for k, v in converted.items() if not k.startswith(".")}
        if name is None:
            if len(objects) != 1:
                raise InputError(f"{path}: holds {sorted(objects)}; say which object to read")
            return next(iter(objects.values()))
        if name not in objects:
            raise InputError(f"{path}: no object '{name}' (has {sorted(objects)})")
        return objects[name]
    return converted


@dataclass
class TrainingSet:
    """Cell-type means: features, log2 expression targets, type metadata."""

    features: pd.DataFrame  # types x features
    targets: pd.DataFrame  # genes x types, log2 expression
    types: pd.DataFrame  # types x (cre_line, layer, broad_type, n_cells_expr, ...)
    restoration: SymbolRestoration | None = None
    notes: dict = field(default_factory=dict)


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


def _check_unique(index: pd.Index, what: str, where: str) -> None:
    if index.has_duplicates:
        dup = index[index.duplicated()][0]
        raise InputError(f"{where}: duplicate {what} {dup!r}")


def read_training_rds(path, reference_symbols: list[str]) -> TrainingSet:
    """Read the Pavlidis lab's cell-type table (``aibs_cre_expr_ephys.rda``).

    Gene columns hold 2^(mean log2(TPM+1)) per type; targets are their log2. Gene
    names mangled by R's ``make.names`` are restored with ``reference_symbols``
    (see :func:`~ephys2expr.genes.restore_symbols`).
    """
    where = os.fspath(path)
    table = read_r(path)
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"{where}: expected a data frame, got {type(table).__name__}")
    if "sample.name" not in table.columns:
        raise InputError(f"{where}: missing column 'sample.name'")
    table = table.copy()
    table.index = pd.Index(table["sample.name"].astype(str), name="cell_type")
    _check_unique(table.index, "cell type", where)
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
    _check_unique(targets.index, "gene", where)
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
    try:
        table = pd.read_csv(path, index_col=0, dtype={0: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: unreadable CSV ({exc})") from None
    table.index = table.index.astype(str).str.strip()
    _check_unique(pd.Index(table.columns), "cell type", where)
    _check_unique(table.index, "row", where)
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
    try:
        raw = pd.read_csv(path, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: unreadable CSV ({exc})") from None
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
