"""Expression matrices on the log2 scale: GEO read counts and stored TPM + 1.

* :func:`read_geo_counts` - ``GSE71585_RefSeq_counts.csv`` (genes x cells read counts,
  first column ``gene``) as cells x genes log2(CPM + 1) (:func:`log2_cpm`).
* :func:`log2_stored_tpm_plus_one` - the lab's RData matrices (Tasic 2016 ``aibsExprData``,
  Cadwell 2016 ``cadwell_expr``), which are stored as TPM + 1 already (see
  :mod:`ephys2expr.readers.tasic`).
* :func:`r_matrix_frame` - an R numeric matrix as a DataFrame.
* :func:`read_counts`, :func:`check_counts`, :func:`log2_cpm_library` - raw counts of a
  paired (Patch-seq) source (genes x cells table or ``.h5ad``), checked, and log2(CPM + 1)
  with each cell's library size (:mod:`ephys2expr.readers.paired_layout`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.readers.columns import check_unique, read_table

log = logging.getLogger("ephys2expr")


def r_matrix_frame(arr, path) -> pd.DataFrame:
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


def log2_stored_tpm_plus_one(values: pd.DataFrame, path) -> pd.DataFrame:
    """log2 of a matrix already stored as TPM + 1 (its minimum must be 1).

    Adding another 1 would shift every detected gene: the value 1.0 means not detected.
    """
    v = values.to_numpy()
    if not np.isfinite(v).all():
        raise InputError(f"{path}: expression matrix has NaN or infinite values")
    vmin = float(v.min())
    if vmin < 1.0 - 1e-9:
        raise InputError(f"{path}: minimum value {vmin:g} < 1, not the TPM + 1 scale expected")
    return np.log2(values)


def log2_cpm(counts: np.ndarray) -> np.ndarray:
    """log2(CPM + 1) of a genes x cells count matrix, vectorised.

    CPM is per cell (column): ``1e6 * count / column total``. Cells with zero total
    give zeros rather than NaN.
    """
    counts = np.asarray(counts, dtype=float)
    totals = counts.sum(axis=0)
    scale = np.divide(1e6, totals, out=np.zeros_like(totals), where=totals > 0)
    return np.log2(counts * scale + 1.0)


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


def check_counts(values: np.ndarray, genes: pd.Index, cells: pd.Index, where: str) -> None:
    """Counts must be finite, non-negative whole numbers; the error names gene and cell."""

    def first(mask: np.ndarray, what: str) -> None:
        if mask.any():
            g, c = np.argwhere(mask)[0]
            raise InputError(
                f"{where}: {what} {values[g, c]:g} for gene '{genes[g]}' in cell '{cells[c]}'"
            )

    first(~np.isfinite(values), "missing or infinite count")
    first(values < 0, "negative count")
    first(values != np.round(values), "count not a whole number")


def read_counts(path: str | os.PathLike, layer: str | None = None) -> pd.DataFrame:
    """Raw counts (``.h5ad``, with ``layer`` or ``X``; else genes x cells) as genes x cells.

    Float64, checked by :func:`check_counts`; ``layer`` applies to ``.h5ad`` only.
    """
    path = Path(path)
    if path.suffix == ".h5ad":
        frame = _read_h5ad_counts(path, layer)
    else:
        if layer is not None:
            raise InputError(f"{path}: a layer ('{layer}') only applies to .h5ad counts")
        table = read_table(path)
        frame = table.set_index(table.columns[0])
        frame.index, frame.columns = frame.index.astype(str), frame.columns.astype(str)
        bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if bad:
            raise InputError(f"{path}: cell column '{bad[0]}' is not numeric counts")
        frame = frame.astype(np.float64)
    frame.index.name, frame.columns.name = "gene", "cell_id"
    check_unique(frame.index, "gene", str(path))
    check_unique(frame.columns, "cell id", str(path))
    check_counts(frame.to_numpy(), frame.index, frame.columns, str(path))
    return frame


def _read_h5ad_counts(path: Path, layer: str | None) -> pd.DataFrame:
    import anndata  # imported here: only .h5ad inputs need it
    import scipy.sparse as sp

    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    try:
        adata = anndata.read_h5ad(path)
    except Exception as exc:  # not HDF5, truncated ...
        raise InputError(f"{path}: unreadable .h5ad ({type(exc).__name__}: {exc})") from None
    if layer is not None and layer not in adata.layers:
        raise InputError(f"{path}: no layer '{layer}' (layers: {sorted(adata.layers)})")
    matrix = adata.X if layer is None else adata.layers[layer]
    if matrix is None:
        raise InputError(f"{path}: X is empty; name the layer holding the counts")
    dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    return pd.DataFrame(
        np.asarray(dense, dtype=np.float64).T,
        index=pd.Index(adata.var_names.astype(str)),
        columns=pd.Index(adata.obs_names.astype(str)),
    )


def log2_cpm_library(counts: np.ndarray, library: np.ndarray) -> np.ndarray:
    """log2(CPM + 1) of genes x cells ``counts`` with CPM = 1e6 * count / ``library``."""
    return np.log2(np.asarray(counts, dtype=np.float64) * (1e6 / library)[None, :] + 1.0)


__all__ = [
    "check_counts",
    "log2_cpm",
    "log2_cpm_library",
    "log2_stored_tpm_plus_one",
    "r_matrix_frame",
    "read_counts",
    "read_geo_counts",
]
