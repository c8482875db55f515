"""Expression matrices on the log2 scale: GEO read counts and stored TPM + 1.

* :func:`read_geo_counts` - ``GSE71585_RefSeq_counts.csv`` (genes x cells read counts,
  first column ``gene``) as cells x genes log2(CPM + 1) (:func:`log2_cpm`).
* :func:`log2_stored_tpm_plus_one` - the lab's RData matrices (Tasic 2016 ``aibsExprData``,
  Cadwell 2016 ``cadwell_expr``), which are stored as TPM + 1 already (see
  :mod:`ephys2expr.readers.tasic`).
* :func:`r_matrix_frame` - an R numeric matrix as a DataFrame.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError

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


__all__ = ["log2_cpm", "log2_stored_tpm_plus_one", "r_matrix_frame", "read_geo_counts"]
