"""Readers for the measured expression references used by the ``validate`` stage.

Three references:

* Tasic et al. 2016 (GSE71585) as shipped here: ``aibsExprData.rda`` (170 marker genes x
  1,366 cells, values are TPM + 1, see below) with ``aibsExprMeta.rda`` (transcriptomic
  type, broad class), and ``tasic_2016_anno.RData`` (all 1,809 cells: cre line, dissection,
  QC).
* The full GEO layout of GSE71585, for users who have it: ``GSE71585_RefSeq_counts.csv``
  (genes x cells read counts, first column ``gene``) turned into log2(CPM + 1), and
  ``GSE71585_Clustering_Results.csv`` (one row per cell).
* Cadwell et al. 2016 layer 1 Patch-seq: TPM (``cadwell_expr.rda``), cell metadata
  (``cadwell_meta.rda``), ephys (``IntPhysiologyFinal.mat``) joined through the ArrayExpress
  sample sheet (``E-MTAB-4092.sdrf.txt``).

Scale of ``aibsExprData``: its minimum is exactly 1.0 and the patchSeqQC build script adds 1
to the GEO TPM matrix before saving (``aibsExprDataTrans + 1``; its README says "quantified
as TPM + 1"), so the stored values are TPM + 1 and ``log2(value)`` is log2(TPM + 1), the
scale of the training targets (where 1.0 means not detected). Adding another 1 would shift
every detected gene. ``cadwell_expr`` has the same minimum of 1.0 and comes from the same
lab package built the same way, so it is read the same way.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.taxonomy import cre_group, exc_inh_truth, type_group  # noqa: F401

log = logging.getLogger("ephys2expr")

# The original notebook's filters on GSE71585 cells.
TASIC_KEEP_BROAD = ("GABA-ergic Neuron", "Glutamatergic Neuron")

# Cadwell ephys field -> project feature name (PROVENANCE.md). Units, checked against
# the Allen-derived features (ephys2expr.features.FEATURE_DESCRIPTIONS): vrest mV, inputres
# MOhm (45-180), tau ms, thresh mV, width ms (0.7-1.4, i.e. already ms like aphw = 1000 * s),
# amp mV (peak - threshold, 50-100), ahp mV (positive, below threshold). No conversion needed;
# tests/test_measured.py asserts these ranges so a file in other units fails loudly.
CADWELL_FEATURES: dict[str, str] = {
    "vrest": "rmp",
    "inputres": "rin",
    "tau": "tau",
    "thresh": "apthr",
    "width": "aphw",
    "amp": "apamp",
    "ahp": "ahpamp",
}
# Plausible physiological ranges in the project's units (mV, MOhm, ms); a value outside
# means a unit mismatch (e.g. width in s, inputres in GOhm), not biology.
FEATURE_UNIT_RANGES: dict[str, tuple[float, float]] = {
    "rmp": (-100.0, -30.0),
    "rin": (10.0, 2000.0),
    "tau": (0.5, 100.0),
    "apthr": (-70.0, 0.0),
    "aphw": (0.1, 5.0),
    "apamp": (20.0, 150.0),
    "ahpamp": (-10.0, 50.0),
}


@dataclass
class MeasuredSet:
    """Measured expression of single cells on the log2(x + 1) scale.

    Attributes
    ----------
    expr : pandas.DataFrame
        Cells x genes, log2 expression (float64).
    meta : pandas.DataFrame
        Same index as ``expr``; at least ``type`` (transcriptomic or morphological type),
        ``broad`` (``Exc``/``Inh``/``Non-neuronal``) and ``group`` (see :func:`type_group`).
    """

    expr: pd.DataFrame
    meta: pd.DataFrame


def _read_r_object(path: str | os.PathLike, name: str | None = None):
    """Read one object from an R file, RData or RDS alike (the suffix is not trusted)."""
    import rdata

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    try:
        objs = rdata.read_rda(path)
    except Exception:  # not an RData workspace: try a single serialised object
        try:
            return rdata.read_rds(path)
        except Exception as exc:
            raise InputError(f"{path}: not a readable R data file ({exc})") from None
    objs = {k: v for k, v in objs.items() if not k.startswith(".")}
    if name is not None:
        if name not in objs:
            raise InputError(f"{path}: no R object '{name}' (has {sorted(objs)})")
        return objs[name]
    if len(objs) != 1:
        raise InputError(f"{path}: expected one R object, found {sorted(objs)}")
    return next(iter(objs.values()))


def _matrix_to_frame(arr, path) -> pd.DataFrame:
    """An R numeric matrix (xarray from ``rdata``) as a genes x cells DataFrame."""
    if hasattr(arr, "coords") and arr.ndim == 2:
        d0, d1 = arr.dims
        return pd.DataFrame(
            np.asarray(arr.values, dtype=float),
            index=[str(g) for g in arr.coords[d0].values],
            columns=[str(c) for c in arr.coords[d1].values],
        )
    if isinstance(arr, pd.DataFrame):
        return arr.astype(float)
    raise InputError(f"{path}: expected a genes x cells numeric matrix, got {type(arr).__name__}")


def _log2_tpm_plus_one_stored(values: pd.DataFrame, path) -> pd.DataFrame:
    """log2 of a matrix already stored as TPM + 1 (minimum must be 1, see module doc)."""
    v = values.to_numpy()
    if not np.isfinite(v).all():
        raise InputError(f"{path}: expression matrix has NaN or infinite values")
    vmin = float(v.min())
    if vmin < 1.0 - 1e-9:
        raise InputError(f"{path}: minimum value {vmin:g} < 1, not the TPM + 1 scale expected")
    return np.log2(values)


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
    data = _matrix_to_frame(_read_r_object(expr_path, "aibsExprData"), expr_path)
    meta = _read_r_object(meta_path, "aibsExprMeta")
    for col in ("sample_id", "aibs_type", "norm_broad_types"):
        if col not in meta.columns:
            raise InputError(f"{meta_path}: missing column '{col}'")
    meta = meta.assign(sample_id=meta["sample_id"].astype(str)).set_index("sample_id")
    missing = data.columns.difference(meta.index)
    if len(missing):
        raise InputError(f"{meta_path}: no metadata for cell '{missing[0]}' of {expr_path}")
    expr = _log2_tpm_plus_one_stored(data, expr_path).T
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
        anno = _read_r_object(path, "tasic_2016_anno")
    return _clean_annotation(anno, path)


def filter_tasic_cells(anno: pd.DataFrame) -> pd.DataFrame:
    """The original's filters: tdTomato positive, passed QC, GABA-ergic or Glutamatergic."""
    keep = (
        (anno["tdTomato"] == "positive")
        & (anno["pass_qc_checks"] == "Y")
        & anno["broad_type"].isin(TASIC_KEEP_BROAD)
    )
    return anno.loc[keep.fillna(False).to_numpy()]


def log2_cpm(counts: np.ndarray) -> np.ndarray:
    """log2(CPM + 1) of a genes x cells count matrix, vectorised.

    CPM is per cell (column): ``1e6 * count / column total``. Cells with zero total
    give zeros rather than NaN.
    """
    counts = np.asarray(counts, dtype=float)
    totals = counts.sum(axis=0)
    scale = np.divide(1e6, totals, out=np.zeros_like(totals), where=totals > 0)
    return np.log2(counts * scale + 1.0)


def log2_cpm_loop(counts: np.ndarray) -> np.ndarray:
    """Per-cell loop version of :func:`log2_cpm` (the benchmark's baseline, as the original)."""
    counts = np.asarray(counts, dtype=float)
    out = np.empty_like(counts)
    for j in range(counts.shape[1]):
        col = counts[:, j]
        tot = col.sum()
        out[:, j] = np.log2((col * 1e6 / tot if tot > 0 else col * 0.0) + 1.0)
    return out


def read_geo_counts(
    path: str | os.PathLike, genes: list[str] | None = None, cells: list[str] | None = None
) -> pd.DataFrame:
    """Read ``GSE71585_RefSeq_counts.csv`` and return cells x genes log2(CPM + 1).

    CPM uses each cell's total over ALL genes in the file; ``genes`` only selects columns of
    the result afterwards, so the values do not depend on which genes are asked for.

    Parameters
    ----------
    path : path-like
        Genes x cells counts, first column ``gene`` (``.csv`` or ``.csv.gz``).
    genes, cells : list of str, optional
        Subsets of the result (genes missing from the file are dropped with a log line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    header = pd.read_csv(path, nrows=0)
    if len(header.columns) == 0 or header.columns[0] != "gene":
        raise InputError(f"{path}: first column must be 'gene'")
    usecols = None
    if cells is not None:
        missing = [c for c in cells if c not in header.columns]
        if missing:
            raise InputError(f"{path}: no column for cell '{missing[0]}'")
        usecols = ["gene", *cells]
    df = pd.read_csv(path, index_col="gene", usecols=usecols, engine="c")
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise InputError(f"{path}: column '{bad[0]}' is not numeric counts")
    values = df.to_numpy(dtype=float)
    if np.isnan(values).any():
        col = df.columns[np.isnan(values).any(axis=0)][0]
        raise InputError(f"{path}: missing count in column '{col}'")
    if (values < 0).any():
        col = df.columns[(values < 0).any(axis=0)][0]
        raise InputError(f"{path}: negative count in column '{col}'")
    logcpm = pd.DataFrame(log2_cpm(values).T, index=df.columns, columns=df.index.astype(str))
    logcpm.index.name = "cell_id"
    if genes is not None:
        present = [g for g in genes if g in logcpm.columns]
        if len(present) < len(genes):
            log.info(
                "%s: %d of %d requested genes absent", path, len(genes) - len(present), len(genes)
            )
        logcpm = logcpm[present]
    return logcpm


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


def read_cadwell_ephys(mat_path: str | os.PathLike) -> pd.DataFrame:
    """Cadwell 2016 ephys (``IntPhysiologyFinal.mat``), project feature names and units.

    Returns a DataFrame indexed by ``idx`` (int) with the 7 features of
    :data:`CADWELL_FEATURES` (NaN where the cell lacks one) and ``class``.
    """
    import scipy.io

    mat_path = Path(mat_path)
    if not mat_path.is_file():
        raise FileNotFoundError(2, "No such file", str(mat_path))
    try:
        mat = scipy.io.loadmat(mat_path, squeeze_me=True, struct_as_record=False)
    except Exception as exc:
        raise InputError(f"{mat_path}: not a readable MATLAB file ({exc})") from None
    if "cell" not in mat:
        raise InputError(f"{mat_path}: no struct array 'cell'")
    cells = np.atleast_1d(mat["cell"])
    fields = ["idx", "class", *CADWELL_FEATURES]
    missing = [f for f in fields if f not in cells[0]._fieldnames]
    if missing:
        raise InputError(f"{mat_path}: struct 'cell' lacks field '{missing[0]}'")

    def num(v) -> float:
        a = np.atleast_1d(np.asarray(v, dtype=float))
        return float(a[0]) if a.size == 1 else np.nan  # empty [] in MATLAB means missing

    rows = []
    for c in cells:
        row = {"idx": int(num(c.idx)), "class": str(c.__dict__["class"])}
        row.update({CADWELL_FEATURES[f]: num(getattr(c, f)) for f in CADWELL_FEATURES})
        rows.append(row)
    df = pd.DataFrame(rows).set_index("idx")
    check_feature_units(df, mat_path)
    return df


def check_feature_units(df: pd.DataFrame, path) -> None:
    """Raise :class:`InputError` if a feature's median is outside its plausible unit range."""
    for feat, (lo, hi) in FEATURE_UNIT_RANGES.items():
        if feat in df.columns and df[feat].notna().any():
            med = float(df[feat].median())
            if not lo <= med <= hi:
                raise InputError(
                    f"{path}: feature '{feat}' median {med:g} outside [{lo:g}, "
                    f"{hi:g}]: wrong units?"
                )


def read_sdrf_join(sdrf_path: str | os.PathLike) -> pd.Series:
    """ArrayExpress sheet: ``Source Name`` ``Int_<idx>`` -> ``Comment[ENA_RUN]`` (ERR id).

    Returns a Series indexed by the integer ``idx`` with the ERR run id as value.
    """
    sdrf_path = Path(sdrf_path)
    if not sdrf_path.is_file():
        raise FileNotFoundError(2, "No such file", str(sdrf_path))
    sheet = pd.read_csv(sdrf_path, sep="\t", dtype=str)
    for col in ("Source Name", "Comment[ENA_RUN]"):
        if col not in sheet.columns:
            raise InputError(f"{sdrf_path}: missing column '{col}'")
    m = sheet["Source Name"].str.extract(r"^Int_(\d+)$")[0]
    if m.isna().any():
        bad = sheet.loc[m.isna(), "Source Name"].iloc[0]
        raise InputError(f"{sdrf_path}: 'Source Name' value '{bad}' is not Int_<idx>")
    out = pd.Series(
        sheet["Comment[ENA_RUN]"].to_numpy(), index=m.astype(int).to_numpy(), name="run"
    )
    out.index.name = "idx"
    return out[~out.index.duplicated()]


@dataclass
class PatchSeqSet:
    """Paired Patch-seq cells: measured expression and ephys of the same cells.

    Attributes
    ----------
    expr : pandas.DataFrame
        Cells (ERR run id) x genes, log2(TPM + 1).
    features : pandas.DataFrame
        Same cells, the Cadwell features in project names/units (NaN where missing).
    meta : pandas.DataFrame
        ``major_type`` (eNGC, SBC, ...), ``idx`` (the ephys index).
    """

    expr: pd.DataFrame
    features: pd.DataFrame
    meta: pd.DataFrame


def read_cadwell(
    expr_path: str | os.PathLike,
    meta_path: str | os.PathLike,
    ephys_path: str | os.PathLike,
    sdrf_path: str | os.PathLike,
) -> PatchSeqSet:
    """Read Cadwell 2016 and keep the cells that have both expression and ephys."""
    data = _matrix_to_frame(_read_r_object(expr_path, "cadwell_expr"), expr_path)
    meta = _read_r_object(meta_path, "cadwell_meta")
    if "sample_id" not in meta.columns or "major_type" not in meta.columns:
        raise InputError(f"{meta_path}: needs columns 'sample_id' and 'major_type'")
    meta = meta.assign(sample_id=meta["sample_id"].astype(str)).set_index("sample_id")
    ephys = read_cadwell_ephys(ephys_path)
    runs = read_sdrf_join(sdrf_path)
    unknown = ephys.index.difference(runs.index)
    if len(unknown):
        raise InputError(
            f"{sdrf_path}: no row 'Int_{unknown[0]}' for ephys cell idx "
            f"{unknown[0]} of {ephys_path}"
        )
    ephys = ephys.assign(run=runs.loc[ephys.index].to_numpy())
    paired = ephys[ephys["run"].isin(data.columns)]
    log.info(
        "Cadwell 2016: %d cells with expression, %d with ephys, %d paired",
        data.shape[1],
        len(ephys),
        len(paired),
    )
    expr = _log2_tpm_plus_one_stored(data[paired["run"].tolist()], expr_path).T
    expr.index.name = "cell_id"
    feats = paired.set_index("run")[list(CADWELL_FEATURES.values())]
    feats.index.name = "cell_id"
    m = pd.DataFrame(
        {
            "major_type": meta["major_type"].astype(str).reindex(expr.index).fillna("unknown"),
            "idx": paired.index.to_numpy(),
            "ephys_class": paired["class"].to_numpy(),
        },
        index=expr.index,
    )
    return PatchSeqSet(expr=expr.astype(float), features=feats.astype(float), meta=m)


def read_palette(path: str | os.PathLike) -> dict[str, str]:
    """``driver_lines_palette.csv``: cre line label -> hex colour."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    pal = pd.read_csv(path, dtype=str)
    for col in ("driver_lines_label", "driver_lines_color"):
        if col not in pal.columns:
            raise InputError(f"{path}: missing column '{col}'")
    bad = pal.loc[~pal["driver_lines_color"].str.match(r"^#[0-9A-Fa-f]{6}$"), "driver_lines_color"]
    if len(bad):
        raise InputError(f"{path}: colour '{bad.iloc[0]}' is not #RRGGBB")
    return dict(zip(pal["driver_lines_label"], pal["driver_lines_color"], strict=True))
