"""Tasic et al. 2016 (GSE71585) single cells, the measured reference of ``validate``.

Two layouts:

* As shipped here: ``aibsExprData.rda`` (170 marker genes x 1,366 cells, values are
  TPM + 1, see below) with ``aibsExprMeta.rda`` (transcriptomic type, broad class), and
  ``tasic_2016_anno.RData`` (all 1,809 cells: cre line, dissection, QC).
* The full GEO layout, for users who have it: ``GSE71585_RefSeq_counts.csv`` (genes x cells
  read counts, first column ``gene``) turned into log2(CPM + 1), and
  ``GSE71585_Clustering_Results.csv`` (one row per cell).

Scale of ``aibsExprData``: its minimum is exactly 1.0 and the patchSeqQC build script adds 1
to the GEO TPM matrix before saving (``aibsExprDataTrans + 1``; its README says "quantified
as TPM + 1"), so the stored values are TPM + 1 and ``log2(value)`` is log2(TPM + 1), the
scale of the training targets (where 1.0 means not detected). Adding another 1 would shift
every detected gene.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.readers.counts import log2_stored_tpm_plus_one, r_matrix_frame, read_geo_counts
from ephys2expr.readers.r import read_r
from ephys2expr.taxonomy import type_group

log = logging.getLogger("ephys2expr")

# The original notebook's filters on GSE71585 cells.
TASIC_KEEP_BROAD = ("GABA-ergic Neuron", "Glutamatergic Neuron")


@dataclass
class MeasuredSet:
    """Measured expression of single cells on the log2(x + 1) scale.

    Attributes
    ----------
    expr : pandas.DataFrame
        Cells x genes, log2 expression (float64).
    meta : pandas.DataFrame
        Same index as ``expr``; at least ``type`` (transcriptomic or morphological type),
        ``broad`` (``Exc``/``Inh``/``Non-neuronal``) and ``group`` (see
        :func:`ephys2expr.taxonomy.type_group`).
    """

    expr: pd.DataFrame
    meta: pd.DataFrame


def read_tasic_rda(
    expr_path: str | os.PathLike, meta_path: str | os.PathLike, neurons_only: bool = True
) -> MeasuredSet:
    """Read ``aibsExprData`` + ``aibsExprMeta`` (Tasic 2016, 170 marker genes).

    Parameters
    ----------
    expr_path, meta_path : path-like
        The two RData files.
    neurons_only : bool
        Keep only ``Inhibitory``/``Pyramidal`` cells (the original's GABA-ergic or
        Glutamatergic filter).

    Returns
    -------
    MeasuredSet
        ``expr`` in log2(TPM + 1); ``meta`` with ``type``, ``broad``, ``group``.
    """
    data = r_matrix_frame(read_r(expr_path, "aibsExprData"), expr_path)
    meta = read_r(meta_path, "aibsExprMeta")
    for col in ("sample_id", "aibs_type", "norm_broad_types"):
        if col not in meta.columns:
            raise InputError(f"{meta_path}: missing column '{col}'")
    meta = meta.assign(sample_id=meta["sample_id"].astype(str)).set_index("sample_id")
    missing = data.columns.difference(meta.index)
    if len(missing):
        raise InputError(f"{meta_path}: no metadata for cell '{missing[0]}' of {expr_path}")
    expr = log2_stored_tpm_plus_one(data, expr_path).T
    meta = meta.loc[expr.index]
    broad = (
        meta["norm_broad_types"]
        .astype(str)
        .map({"Inhibitory": "Inh", "Pyramidal": "Exc"})
        .fillna("Non-neuronal")
    )
    out = pd.DataFrame(
        {
            "type": meta["aibs_type"].astype(str),
            "broad": broad,
            "group": [type_group(t) for t in meta["aibs_type"].astype(str)],
            "cre_line": pd.Series(pd.NA, index=meta.index, dtype="string"),
        },
        index=pd.Index(expr.index, name="cell_id"),
    )
    if neurons_only:
        keep = out["broad"].isin(["Exc", "Inh"]).to_numpy()
        expr, out = expr.loc[keep], out.loc[keep]
    expr.index.name = "cell_id"
    expr.columns.name = "gene"
    log.info("Tasic 2016 (rda): %d cells x %d genes", *expr.shape)
    return MeasuredSet(expr=expr.astype(float), meta=out)


_ANNO_RENAME = {"sample_title": "sample_name", "primary_type": "primary_type_label"}
_ANNO_REQUIRED = ("sample_name", "cre_driver_1", "tdTomato", "pass_qc_checks", "broad_type")


def _clean_annotation(anno: pd.DataFrame, path) -> pd.DataFrame:
    anno = anno.rename(columns=_ANNO_RENAME)
    for col in _ANNO_REQUIRED:
        if col not in anno.columns:
            raise InputError(f"{path}: missing column '{col}'")
    anno = anno.copy()
    for col in anno.columns:
        if anno[col].dtype == object or str(anno[col].dtype).startswith("string"):
            anno[col] = anno[col].astype("string")
    if anno["sample_name"].duplicated().any():
        dup = anno["sample_name"][anno["sample_name"].duplicated()].iloc[0]
        raise InputError(f"{path}: duplicate sample '{dup}' in column 'sample_name'")
    return anno.set_index("sample_name")


def read_tasic_annotation(path: str | os.PathLike) -> pd.DataFrame:
    """All GSE71585 cells' annotation, from ``tasic_2016_anno.RData`` or the GEO CSV.

    ``GSE71585_Clustering_Results.csv`` (``sample_title``, ``primary_type``, ...) and the
    RData (``sample_name``, ``primary_type_label``, ...) hold the same content; both are
    returned indexed by ``sample_name`` with the RData's column names.
    """
    path = Path(path)
    if path.suffix.lower() in (".csv", ".gz") and ".csv" in path.name.lower():
        if not path.is_file():
            raise FileNotFoundError(2, "No such file", str(path))
        anno = pd.read_csv(path, dtype=str, keep_default_na=False)
    else:
        anno = read_r(path, "tasic_2016_anno")
    return _clean_annotation(anno, path)


def filter_tasic_cells(anno: pd.DataFrame) -> pd.DataFrame:
    """The original's filters: tdTomato positive, passed QC, GABA-ergic or Glutamatergic."""
    keep = (
        (anno["tdTomato"] == "positive")
        & (anno["pass_qc_checks"] == "Y")
        & anno["broad_type"].isin(TASIC_KEEP_BROAD)
    )
    return anno.loc[keep.fillna(False).to_numpy()]


def read_tasic_geo(
    counts_path: str | os.PathLike,
    clustering_path: str | os.PathLike,
    genes: list[str] | None = None,
) -> MeasuredSet:
    """Full GEO layout: counts -> log2(CPM + 1) for the cells kept by :func:`filter_tasic_cells`.

    ``meta`` holds the cells' cre line (so they can be coloured like predicted cells).
    """
    anno = filter_tasic_cells(read_tasic_annotation(clustering_path))
    header = pd.read_csv(counts_path, nrows=0).columns
    cells = [c for c in anno.index if c in header]
    if not cells:
        raise InputError(
            f"{counts_path}: none of the filtered cells of {clustering_path} is a column"
        )
    expr = read_geo_counts(counts_path, genes=genes)
    expr = expr.loc[cells]
    anno = anno.loc[cells]
    label = anno.get("primary_type_label", pd.Series("", index=anno.index)).astype(str)
    broad = anno["broad_type"].map({"GABA-ergic Neuron": "Inh", "Glutamatergic Neuron": "Exc"})
    meta = pd.DataFrame(
        {
            "type": label,
            "broad": broad.astype(str),
            "group": [type_group(t) for t in label],
            "cre_line": anno["cre_driver_1"].astype("string"),
        },
        index=pd.Index(cells, name="cell_id"),
    )
    log.info("Tasic 2016 (GEO counts): %d cells x %d genes", *expr.shape)
    return MeasuredSet(expr=expr, meta=meta)


__all__ = [
    "TASIC_KEEP_BROAD",
    "MeasuredSet",
    "filter_tasic_cells",
    "read_tasic_annotation",
    "read_tasic_geo",
    "read_tasic_rda",
]
