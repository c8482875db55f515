"""The generic paired (Patch-seq) layout: per cell, ephys features and read counts.

Three files (CSV/TSV, the separator read from the header line, or Parquet):

* **features**: one row per cell, the id column (``id_column``, default ``cell_id``) and
  feature columns under this project's names and units (:data:`PAIRED_FEATURE_DESCRIPTIONS`:
  ``rin`` MOhm, ``aphw`` ms, ``latency`` s ...; ``feature_columns`` maps other names).
* **counts**: raw read counts (non-negative whole numbers): genes x cells (first column or
  Parquet index = gene, one column per cell id) or an AnnData ``.h5ad`` (cells x genes,
  counts in ``X`` or in ``layer``). The genes may be a subset of the transcriptome:
  expression is log2(CPM + 1) with CPM from the **library size of the metadata**, never
  from the counted genes' sum.
* **metadata**: the catalogue of cells (every cell of the other two tables must be listed),
  with the id column and the columns named by :class:`MetadataColumns`: library size,
  animal/group (cross-validation keeps a group together), type and family/class (default:
  the type). Exc/Inh comes from the family (:data:`FAMILY_BROAD_TYPE`; ``""`` if unknown).

Cells are excluded, each counted under the first reason that applies: ``low quality``
(family or type in ``exclude_labels``), ``missing ephys``, ``incomplete ephys`` (a feature
missing), ``missing counts``, ``library size below counted reads`` (impossible: the library
size is wrong) and, with ``library_tolerance``, ``library size inconsistent`` (the counted
genes' share of the library is off the median share by more than that factor).

Bad input is an :class:`~ephys2expr.errors.InputError`, one line naming the file and the
column or value: counts negative or not whole, cell ids absent from the metadata (with how
many match) or no cell in all three tables, a library size missing or zero, a group missing
or a single group, a feature constant over the cells kept, an ``.h5ad`` layer not there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.features import PAIRED_FEATURES
from ephys2expr.readers.columns import check_unique, id_strings, numeric_column, read_table
from ephys2expr.readers.counts import log2_cpm_library, read_counts

# RNA family (Allen/BICCN mouse cortex taxonomy, as in Scala et al. 2021) -> Exc/Inh.
FAMILY_BROAD_TYPE: dict[str, str] = {
    **dict.fromkeys(["pvalb", "sst", "vip", "lamp5", "sncg"], "Inh"),
    **dict.fromkeys(["it", "et", "ct", "np"], "Exc"),
    **{"inh": "Inh", "inhibitory": "Inh", "gabaergic": "Inh"},  # a family column of classes
    **{"exc": "Exc", "excitatory": "Exc", "glutamatergic": "Exc"},
}
LOW_QUALITY: tuple[str, ...] = ("low quality",)


@dataclass
class PairedSet:
    """Paired cells ready for training.

    Attributes
    ----------
    features : DataFrame
        Cells x features (index ``cell_id``), float64, the project's names and units.
    expression : DataFrame
        Genes x cells (index ``gene``, columns = ``features.index`` in order),
        log2(CPM + 1) with CPM from the given library size, float64.
    metadata : DataFrame
        Index ``cell_id`` (same order); ``group``, ``family``, ``type``, ``broad_type``
        (``Exc``/``Inh``, ``""`` where unknown), ``library_size`` and any extra columns.
    report : dict
        Cells per table, matched, excluded by reason, final counts, feature ranges...
    """

    features: pd.DataFrame
    expression: pd.DataFrame
    metadata: pd.DataFrame
    report: dict = field(default_factory=dict)


def indexed(table: pd.DataFrame, column: str, where: str) -> pd.DataFrame:
    """``table`` indexed by its id ``column`` (as str), which must exist and be unique."""
    if column not in table.columns:
        raise InputError(f"{where}: no id column '{column}' (has {list(table.columns)[:8]} ...)")
    ids = table[column]
    if ids.isna().any():
        raise InputError(f"{where}: empty id in column '{column}' (row {ids.index[ids.isna()][0]})")
    out = table.drop(columns=column)
    out.index = pd.Index(id_strings(ids, column, where), name="cell_id")
    check_unique(out.index, f"cell id in column '{column}'", where)
    return out


def select_features(
    table: pd.DataFrame,
    where: str,
    names: Sequence[str] | None = None,
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The feature columns of ``table`` under the project's names, as float64.

    ``columns`` maps project names to the table's columns; ``names`` picks features (default:
    every column that is a known feature, :data:`PAIRED_FEATURES`).
    """
    table = table.rename(columns={v: k for k, v in (columns or {}).items()})
    if names is None:
        names = [n for n in PAIRED_FEATURES if n in table.columns]
        if not names:
            raise InputError(f"{where}: no feature column; expected some of {PAIRED_FEATURES}")
    unknown = [n for n in names if n not in PAIRED_FEATURES]
    if unknown:
        raise InputError(f"{where}: unknown feature(s) {unknown}; known: {PAIRED_FEATURES}")
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise InputError(f"{where}: missing feature column(s) {missing}")
    return pd.DataFrame({n: numeric_column(table, n, where) for n in names}, index=table.index)


@dataclass(frozen=True)
class MetadataColumns:
    """Names of the metadata's columns: library size (total reads, for CPM), animal/group,
    fine type, family/class (default: the type column) and ``extra`` (output name -> column,
    copied into :attr:`PairedSet.metadata`)."""

    library: str = "library_size"
    group: str = "group"
    type: str = "type"
    family: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


def assemble_paired(
    features: pd.DataFrame,
    counts: pd.DataFrame,
    metadata: pd.DataFrame,
    columns: MetadataColumns,
    sources: Mapping[str, str],
    *,
    exclude_labels: Sequence[str] = LOW_QUALITY,
    library_tolerance: float | None = None,
    missing_counts_reason: Mapping[str, str] | None = None,
    feature_sources: Mapping[str, str] | None = None,
) -> PairedSet:
    """Match the three tables, exclude cells, check the rest and compute log2(CPM + 1).

    Parameters
    ----------
    features, counts, metadata : DataFrame
        Cells x project features (:func:`select_features`), genes x cells raw counts
        (:func:`read_counts`) and the metadata, all indexed by cell id.
    columns : MetadataColumns
    sources : mapping
        File names for messages: keys ``features``, ``counts``, ``metadata``.
    exclude_labels : sequence of str
        Family/type labels of low-quality cells (case-insensitive).
    library_tolerance : float, optional
        Exclude cells whose counted share of the library is off the median share by more
        than this factor (``None``: only the impossible case, counted reads > library).
    missing_counts_reason, feature_sources : mapping, optional
        Cell id -> exclusion reason when absent from ``counts`` (default ``missing
        counts``); feature -> source column(s), for messages.
    """
    f_src, m_src = sources["features"], sources["metadata"]
    matched, family = _check_tables(features, counts, metadata, columns, sources)
    fam, typ = (metadata[c].fillna("").astype(str).str.strip() for c in (family, columns.type))
    feats = features.reindex(metadata.index)
    reasons, library, share = _exclusions(
        metadata,
        features,
        feats,
        counts,
        (fam, typ),
        columns,
        m_src,
        exclude_labels,
        library_tolerance,
        missing_counts_reason,
    )
    kept = metadata.index[(reasons == "").to_numpy()]
    groups = _groups(metadata.loc[kept, columns.group], columns.group, m_src)
    final = feats.loc[kept].astype(np.float64)
    _check_not_constant(final, f_src, feature_sources)
    lib = library.loc[kept].to_numpy()
    expression = pd.DataFrame(
        log2_cpm_library(counts[kept].to_numpy(), lib), index=counts.index, columns=kept
    )
    expression.index.name, expression.columns.name = "gene", "cell_id"
    meta = _cell_meta(groups, fam, typ, kept, lib, columns, metadata)
    final.index.name = meta.index.name = "cell_id"
    report = {
        "sources": dict(sources),
        "cells": {"features": len(features), "counts": counts.shape[1], "metadata": len(metadata)},
        "matched": len(matched),
        "excluded": _count(reasons),
        "incomplete_features": {k: int(v) for k, v in features.isna().sum().items() if v},
        "final_cells": len(kept),
        "genes": counts.shape[0],
        "genes_never_detected": int((counts[kept].to_numpy().sum(axis=1) == 0).sum()),
        "groups": int(groups.nunique()),
        "families": _count(meta["family"].replace("", "unknown")),
        "broad_types": _count(meta["broad_type"].replace("", "unknown")),
        "counted_share_of_library": _quantiles(share.loc[kept]),
        "counted_share_of_library_before_library_checks": _quantiles(share),
        "features": {n: _quantiles(final[n]) for n in final.columns},
    }
    return PairedSet(features=final, expression=expression, metadata=meta, report=report)


def _check_tables(features, counts, metadata, columns, sources):
    """The three tables' ids and metadata columns checked: ``(matched ids, family column)``."""
    f_src, c_src, m_src = sources["features"], sources["counts"], sources["metadata"]
    _check_ids_listed(features.index, metadata.index, f_src, m_src)
    _check_ids_listed(counts.columns, metadata.index, c_src, m_src)
    family = columns.family or columns.type
    for col in [columns.library, columns.group, columns.type, family, *columns.extra.values()]:
        if col not in metadata.columns:
            raise InputError(f"{m_src}: no column '{col}'")
    matched = metadata.index.intersection(features.index).intersection(counts.columns)
    if matched.empty:
        raise InputError(
            f"{c_src}: none of its {counts.shape[1]} cell ids is also in {f_src} "
            f"({len(features)} cells) and {m_src} ({len(metadata)} cells); e.g. "
            f"'{counts.columns[0]}' vs '{features.index[0]}'"
        )
    return matched, family


def _exclusions(
    metadata,
    features,
    feats,
    counts,
    labels_of,
    columns,
    m_src,
    exclude_labels,
    library_tolerance,
    missing_counts_reason,
):
    """Each cell's exclusion reason (the first that applies; '' = kept), the library sizes
    and the counted share of the library: ``(reasons, library, share)``."""
    fam, typ = labels_of
    # Exclusion, each cell under the first reason that applies.
    reasons = pd.Series("", index=metadata.index, dtype=object)

    def exclude(mask, reason) -> None:
        reasons[np.asarray(mask) & (reasons == "").to_numpy()] = reason

    labels = {s.lower() for s in exclude_labels}
    exclude(fam.str.lower().isin(labels) | typ.str.lower().isin(labels), "low quality")
    exclude(~metadata.index.isin(features.index), "missing ephys")
    exclude(feats.isna().any(axis=1), "incomplete ephys")
    for cell in metadata.index[~metadata.index.isin(counts.columns) & (reasons == "")]:
        reasons[cell] = (missing_counts_reason or {}).get(cell, "missing counts")
    kept = metadata.index[(reasons == "").to_numpy()]
    library = _library_sizes(metadata.loc[kept], columns.library, m_src)
    share = pd.Series(counts[kept].to_numpy().sum(axis=0) / library.to_numpy(), index=kept)
    exclude(metadata.index.isin(kept[share > 1.0 + 1e-9]), "library size below counted reads")
    if library_tolerance is not None:
        off = np.abs(np.log(share / share.median())) > np.log(library_tolerance)
        exclude(metadata.index.isin(kept[off.to_numpy()]), "library size inconsistent")
    kept = metadata.index[(reasons == "").to_numpy()]
    if kept.empty:
        raise InputError(f"{m_src}: no cell left after exclusion ({_count(reasons)})")
    return reasons, library, share


def _check_not_constant(final, f_src, feature_sources) -> None:
    """A feature constant over the kept cells is an error naming it (and its source)."""
    kept = final.index
    for name in final.columns:
        if final[name].nunique() < 2:
            source = (feature_sources or {}).get(name)
            src = f" (from {source})" if source else ""
            raise InputError(
                f"{f_src}: feature column '{name}'{src} is constant ({final[name].iloc[0]:g}) "
                f"over the {len(kept)} cells kept"
            )


def _cell_meta(groups, fam, typ, kept, lib, columns, metadata) -> pd.DataFrame:
    """The kept cells' group, family, type, broad type, library size and extra columns."""
    meta = pd.DataFrame(
        {"group": groups, "family": fam.loc[kept], "type": typ.loc[kept]}, index=kept
    )
    meta["broad_type"] = meta["family"].str.lower().map(FAMILY_BROAD_TYPE).fillna("")
    meta["library_size"] = lib
    for name, col in columns.extra.items():
        meta[name] = metadata.loc[kept, col]
    return meta


def _groups(groups: pd.Series, column: str, where: str) -> pd.Series:
    blank = groups.isna() | (groups.astype(str).str.strip() == "")
    if blank.any():
        raise InputError(
            f"{where}: no group in column '{column}' for cell '{groups.index[blank][0]}'"
        )
    if groups.nunique() < 2:
        raise InputError(
            f"{where}: column '{column}' has a single group {groups.iloc[0]!r} among the "
            f"{len(groups)} cells kept; grouped cross-validation needs at least 2"
        )
    return groups.astype(str)


def _check_ids_listed(ids: pd.Index, catalogue: pd.Index, where: str, m_src: str) -> None:
    absent = ids[~ids.isin(catalogue)]
    if len(absent):
        raise InputError(
            f"{where}: {len(absent)} of {len(ids)} cell ids are not in {m_src}, e.g. "
            f"'{absent[0]}' ({len(ids) - len(absent)} match)"
        )


def _library_sizes(meta: pd.DataFrame, column: str, where: str) -> pd.Series:
    lib = numeric_column(meta, column, where)
    bad = lib.isna() | (lib <= 0)
    if bad.any():
        cell = lib.index[bad][0]
        what = "missing" if pd.isna(lib[cell]) else f"{lib[cell]:g}"
        raise InputError(
            f"{where}: library size in column '{column}' is {what} for cell '{cell}' "
            f"({int(bad.sum())} cells)"
        )
    return lib


def _count(reasons: pd.Series) -> dict[str, int]:
    counts = reasons[reasons != ""].value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def _quantiles(values: pd.Series) -> dict[str, float]:
    v = values.to_numpy(dtype=float)
    q = np.quantile(v, [0.0, 0.5, 1.0])
    return {"min": float(q[0]), "median": float(q[1]), "max": float(q[2])}


def read_paired(
    features: str | os.PathLike,
    counts: str | os.PathLike,
    metadata: str | os.PathLike,
    columns: MetadataColumns | None = None,
    *,
    id_column: str = "cell_id",
    layer: str | None = None,
    feature_names: Sequence[str] | None = None,
    feature_columns: Mapping[str, str] | None = None,
    exclude_labels: Sequence[str] = LOW_QUALITY,
    library_tolerance: float | None = None,
) -> PairedSet:
    """Read a paired data set in the generic layout (see the module docstring).

    Parameters
    ----------
    features, counts, metadata : path-like
        The three files.
    columns : MetadataColumns, optional
        The metadata's column names (default ``library_size``, ``group``, ``type``).
    id_column : str
        Cell id column of the feature and metadata tables.
    layer : str, optional
        ``.h5ad`` layer holding the counts (default ``X``).
    feature_names, feature_columns
        See :func:`select_features`.
    exclude_labels, library_tolerance
        See :func:`assemble_paired`.

    Returns
    -------
    PairedSet
    """
    f_src, m_src = str(features), str(metadata)
    feats = indexed(read_table(features), id_column, f_src)
    return assemble_paired(
        select_features(feats, f_src, feature_names, feature_columns),
        read_counts(counts, layer),
        indexed(read_table(metadata), id_column, m_src),
        columns or MetadataColumns(),
        {"features": f_src, "counts": str(counts), "metadata": m_src},
        exclude_labels=exclude_labels,
        library_tolerance=library_tolerance,
        feature_sources=feature_columns,
    )
