"""Apply a model store to new cells: read, check, screen, predict in chunks, write.

Prediction is one matrix product per chunk of cells (``coef @ X.T + intercept``), never a
loop over per-gene models. Outputs are written chunk by chunk (Parquet row groups, HDF5
slabs), so memory stays bounded by ``chunk_cells x n_genes`` whatever the input size.

The predicted values are log2 expression on the training table's scale (log2 of the
type mean of ``2^log2(TPM+1)``). They are stored as float32: seven significant digits are
far below the models' out-of-fold error, and float32 halves the file size.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from ephys2expr.errors import InputError
from ephys2expr.io import atomic_path
from ephys2expr.model_store import ModelStore

log = logging.getLogger("ephys2expr.predict")

ID_COLUMN = "cell_id"
# Per-cell metadata carried from the input to the output when present (CONTRIBUTING.md).
METADATA_COLUMNS: list[str] = ["cre_line", "layer", "dendrite_type", "species", "brain_region"]
# Per-cell flags added by the screen, written beside the metadata.
FLAG_COLUMNS: list[str] = [
    "imputed",
    "imputed_features",
    "extrapolated",
    "n_extrapolated",
    "extrapolated_features",
    "max_range_excess",
]
MISSING_POLICIES = ("drop", "impute")
# Marker genes for the sanity plots, as mouse symbols (matched case-sensitively).
MARKER_GENES: list[str] = [
    "Pvalb",
    "Sst",
    "Vip",
    "Lamp5",
    "Ndnf",
    "Gad1",
    "Slc17a7",
    "Rorb",
    "Fezf2",
]
_SPECIES_ALIASES = {
    "mus musculus": "mouse",
    "mouse": "mouse",
    "homo sapiens": "human",
    "human": "human",
}
PREDICTION_DTYPE = np.float32


# --------------------------------------------------------------------------- reading
def read_cell_table(path: str | os.PathLike, id_column: str | None = None) -> pd.DataFrame:
    """Read a per-cell table (CSV, TSV or Parquet) and index it by a unique string id.

    Parameters
    ----------
    path : path-like
        ``.csv``, ``.tsv``/``.txt`` (tab-separated) or ``.parquet``/``.pq``.
    id_column : str, optional
        Column (or Parquet index) holding the cell id; default ``cell_id``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``cell_id`` (str), all other columns as read.

    Raises
    ------
    InputError
        Unknown format, unreadable file, empty table, missing/blank or duplicated ids.
    """
    path = Path(path)
    id_column = id_column or ID_COLUMN
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if suffix in (".parquet", ".pq"):
            table = pd.read_parquet(path)
            if not isinstance(table.index, pd.RangeIndex) or table.index.name is not None:
                table = table.reset_index()
        elif suffix == ".csv":
            table = pd.read_csv(path, dtype={id_column: str})
        elif suffix in (".tsv", ".txt"):
            table = pd.read_csv(path, sep="\t", dtype={id_column: str})
        else:
            raise InputError(
                f"{path}: unknown table format '{suffix}' (use .csv, .tsv or .parquet)"
            )
    except InputError:
        raise
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: unreadable table ({str(exc).splitlines()[0]})") from None
    if id_column not in table.columns:
        raise InputError(
            f"{path}: no id column '{id_column}' (choose one with --id-column; "
            f"columns are {_preview(table.columns)})"
        )
    if len(table) == 0:
        raise InputError(f"{path}: the table has no rows")
    ids = table[id_column]
    blank = ids.isna() | (ids.astype(str).str.strip() == "")
    if blank.any():
        raise InputError(
            f"{path}: column '{id_column}' has {int(blank.sum())} empty id(s), "
            f"first at row {int(np.flatnonzero(blank.to_numpy())[0]) + 1}"
        )
    ids = ids.astype(str).str.strip()
    dup = ids[ids.duplicated()]
    if len(dup):
        raise InputError(
            f"{path}: column '{id_column}' has duplicate ids, e.g. {_preview(pd.unique(dup))}"
        )
    table = table.drop(columns=[id_column])
    table.index = pd.Index(ids.to_numpy(), name=ID_COLUMN)
    return table


def check_feature_columns(cells: pd.DataFrame, features: list[str], where: str) -> pd.DataFrame:
    """Return the model's feature columns as float64, or raise naming what is wrong.

    Missing values (empty cells, NaN) are allowed here; the missing policy handles them.
    Text that is not a number, booleans and infinite values are errors.
    """
    missing = [f for f in features if f not in cells.columns]
    if missing:
        raise InputError(
            f"{where}: missing feature column(s) {missing} required by the model "
            f"(model features: {features})"
        )
    out = {}
    for name in features:
        col = cells[name]
        if pd.api.types.is_bool_dtype(col):
            raise InputError(f"{where}: feature column '{name}' is boolean, expected numbers")
        values = pd.to_numeric(col, errors="coerce")
        bad = values.isna() & col.notna() & (col.astype(str).str.strip() != "")
        if bad.any():
            cell = bad.index[bad.to_numpy()][0]
            raise InputError(
                f"{where}: non-numeric value {col[cell]!r} in column '{name}' (cell {cell})"
            )
        values = values.astype(float)
        inf = np.isinf(values.to_numpy())
        if inf.any():
            cell = values.index[inf][0]
            raise InputError(f"{where}: infinite value in column '{name}' (cell {cell})")
        out[name] = values
    return pd.DataFrame(out, index=cells.index)


def cell_metadata(cells: pd.DataFrame, species: str | None = None) -> pd.DataFrame:
    """The metadata columns present in ``cells`` (strings, ``None`` where unknown).

    ``species`` is normalised to ``mouse``/``human`` (Allen spells them ``Mus musculus``
    and ``Homo Sapiens``); a table without a species column gets ``species`` (the
    ``--species`` option) or ``"unknown"``.
    """
    meta = pd.DataFrame(index=cells.index)
    for col in METADATA_COLUMNS:
        if col in cells.columns:
            values = cells[col].astype("string").str.strip()
            meta[col] = values.mask(values == "").astype(object).where(values.notna(), None)
    if "species" in meta.columns:
        if species is not None:
            meta["species"] = meta["species"].where(meta["species"].notna(), species)
        meta["species"] = [
            _SPECIES_ALIASES.get(str(s).lower(), str(s).lower()) if s is not None else "unknown"
            for s in meta["species"]
        ]
    else:
        meta["species"] = species or "unknown"
    return meta


# --------------------------------------------------------------------------- screening
@dataclass
class ScreenResult:
    """What :meth:`CellScreen.transform` found.

    Attributes
    ----------
    X : numpy.ndarray
        Kept cells x model features (imputed values filled in), original units.
    kept : numpy.ndarray of bool
        Per input cell: predicted (True) or dropped for missing features (False).
    flags : pandas.DataFrame
        Per input cell: ``n_missing``, ``missing_features``, then :data:`FLAG_COLUMNS`.
    """

    X: np.ndarray
    kept: np.ndarray
    flags: pd.DataFrame


class CellScreen:
    """Handle missing features and flag extrapolation, using the model's training rows.

    Parameters
    ----------
    missing : {"drop", "impute"}
        ``drop``: cells with any missing model feature are not predicted (the original
        project's behaviour). ``impute``: missing values are set to the training mean
        of that feature (the scaler mean of the final fit) and the cell is flagged.
    tolerance : float
        A value is *extrapolated* when it lies more than ``tolerance x (max - min)``
        outside the training range ``[min, max]`` of its feature. Imputed values never
        count as extrapolated.

    Attributes
    ----------
    features_ : list of str
    mean_, min_, max_, range_, lower_, upper_ : numpy.ndarray
        Imputation values, the training range and the tolerated bounds, per feature.
    """

    def __init__(self, missing: str = "drop", tolerance: float = 0.1) -> None:
        self.missing = missing
        self.tolerance = tolerance

    def fit(self, store: ModelStore) -> CellScreen:
        """Take feature names, means and ranges from ``store``; returns self."""
        if self.missing not in MISSING_POLICIES:
            raise InputError(
                f"missing policy '{self.missing}': expected one of {list(MISSING_POLICIES)}"
            )
        if not np.isfinite(self.tolerance) or self.tolerance < 0:
            raise InputError(f"extrapolation tolerance {self.tolerance}: expected >= 0")
        self.features_ = list(store.features)
        self.mean_ = store.scaler_mean.copy()
        self.min_, self.max_ = store.feature_min.copy(), store.feature_max.copy()
        self.range_ = self.max_ - self.min_
        self.lower_ = store.feature_min - self.tolerance * self.range_
        self.upper_ = store.feature_max + self.tolerance * self.range_
        return self

    def transform(self, features: pd.DataFrame) -> ScreenResult:
        """Screen cells (rows of ``features``, columns at least ``features_``)."""
        values = features[self.features_].to_numpy(dtype=float)
        names = np.asarray(self.features_, dtype=object)
        nan = np.isnan(values)
        n_missing = nan.sum(axis=1)
        kept = n_missing == 0 if self.missing == "drop" else np.ones(len(values), dtype=bool)
        filled = np.where(nan, self.mean_, values)

        below = (filled < self.lower_) & ~nan
        above = (filled > self.upper_) & ~nan
        outside = below | above
        # How far beyond the training range, in units of that range (0 inside it).
        with np.errstate(divide="ignore", invalid="ignore"):
            excess = np.maximum(self.min_ - filled, filled - self.max_)
            excess = np.where(outside, excess / np.where(self.range_ > 0, self.range_, 1.0), 0.0)
        flags = pd.DataFrame(
            {
                "n_missing": n_missing.astype(np.int64),
                "missing_features": [",".join(names[row]) for row in nan],
                "imputed": (n_missing > 0) & kept,
                "imputed_features": [
                    ",".join(names[row]) if k else "" for row, k in zip(nan, kept, strict=True)
                ],
                "extrapolated": outside.any(axis=1),
                "n_extrapolated": outside.sum(axis=1).astype(np.int64),
                "extrapolated_features": [",".join(names[row]) for row in outside],
                "max_range_excess": excess.max(axis=1, initial=0.0),
            },
            index=features.index,
        )
        return ScreenResult(X=filled[kept], kept=kept, flags=flags)


# --------------------------------------------------------------------------- genes
def predictable_columns(genes: pd.DataFrame) -> list[str]:
    """Boolean ``beats_*`` columns of the genes table (out-of-fold r2 beats a baseline)."""
    return [
        c
        for c in genes.columns
        if str(c).startswith("beats_") and pd.api.types.is_bool_dtype(genes[c])
    ]


def select_genes(
    store: ModelStore, only_predictable: bool, where: str = "model store"
) -> np.ndarray:
    """Row indices of the genes to predict: all, or those beating every baseline.

    A gene is *predictable* when every boolean ``beats_*`` column of the store's genes
    table is True (its out-of-fold r2 beats each baseline the train stage computed).
    """
    n = len(store.genes)
    if not only_predictable:
        return np.arange(n)
    cols = predictable_columns(store.genes)
    if not cols:
        raise InputError(
            f"{where}: genes table has no boolean 'beats_*' column, so "
            "only_predictable cannot be applied"
        )
    return np.flatnonzero(store.genes[cols].all(axis=1).to_numpy())


# --------------------------------------------------------------------------- predicting
def iter_predictions(
    store: ModelStore, X: np.ndarray, gene_idx: np.ndarray, chunk_cells: int, executor=None
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(cell slice, genes x cells float32 block)`` for consecutive chunks of cells.

    Each block is ``coef[gene_idx] @ X[chunk].T + intercept``, computed as
    ``coef @ (X - centre).T + (intercept + coef @ centre)`` in float32, written straight
    into the output block (no float64 temporaries). Centring on the training means keeps
    the float32 terms small: on the real Allen cells the result differs from the float64
    product by < 1e-5 log2 units (float32 storage alone rounds by ~2e-6), and it is ~5x
    faster because the product (11 features deep) is bound by memory traffic.
    Genes-major blocks make each gene's values contiguous, as a columnar writer wants.

    With a Dask ``executor`` (:mod:`ephys2expr.executor`) the blocks are computed on the
    workers (the coefficients are sent to each worker once) and still yielded in order;
    a block depends only on its own cells, so the values are the same bytes.
    """
    if chunk_cells < 1:
        raise InputError(f"chunk size {chunk_cells}: expected >= 1")
    coef64 = store.coef.to_numpy(dtype=float)[gene_idx]
    centre = store.scaler_mean
    coef = np.ascontiguousarray(coef64, dtype=PREDICTION_DTYPE)
    offset = (store.intercept[gene_idx] + coef64 @ centre).astype(PREDICTION_DTYPE)[:, None]
    slices = [
        slice(start, min(start + chunk_cells, len(X))) for start in range(0, len(X), chunk_cells)
    ]
    if executor is None or executor.client is None:
        for sl in slices:
            yield sl, _prediction_block(coef, offset, centre, X[sl])
        return
    model = executor.share((coef, offset, centre))
    tasks = ((model, X[sl]) for sl in slices)
    blocks = executor.map_ordered(_prediction_task, tasks, what="cell chunks", total=len(slices))
    yield from zip(slices, blocks, strict=True)


def _prediction_block(coef, offset, centre, X) -> np.ndarray:
    """``coef @ (X - centre).T + offset`` in float32 (see :func:`iter_predictions`).

    BLAS runs on one thread here: OpenBLAS's float32 product rounds differently with
    different thread counts (measured: ~1 ulp in 7% of values), and the output bytes must
    not depend on how many threads the process or a Dask worker has. The product is bound
    by memory traffic, so one thread costs little (~40 vs ~30 ms per 1,000 cells x 32,000
    genes, while writing that chunk to Parquet takes far longer).
    """
    xt = np.ascontiguousarray((X - centre).T, dtype=PREDICTION_DTYPE)
    block = np.empty((coef.shape[0], xt.shape[1]), dtype=PREDICTION_DTYPE)
    with threadpool_limits(limits=1, user_api="blas"):
        np.matmul(coef, xt, out=block)
    block += offset
    return block


def _prediction_task(model, X) -> np.ndarray:
    """One chunk of cells on a Dask worker (module level, so it pickles by reference)."""
    return _prediction_block(*model, X)


def _meta_schema(meta: pd.DataFrame) -> pa.Schema:
    """Arrow schema of the metadata part (id first); fixed once so every chunk matches."""
    fields = [pa.field(ID_COLUMN, pa.string(), nullable=False)]
    for col in meta.columns:
        dtype = meta[col].dtype
        if pd.api.types.is_bool_dtype(dtype):
            fields.append(pa.field(col, pa.bool_()))
        elif pd.api.types.is_integer_dtype(dtype):
            fields.append(pa.field(col, pa.int64()))
        elif pd.api.types.is_float_dtype(dtype):
            fields.append(pa.field(col, pa.float64()))
        else:
            fields.append(pa.field(col, pa.string()))
    return pa.schema(fields)


def _meta_arrays(meta: pd.DataFrame, schema: pa.Schema) -> list[pa.Array]:
    arrays = [pa.array(meta.index.astype(str).tolist(), type=pa.string())]
    for field in schema:
        if field.name == ID_COLUMN:
            continue
        col = meta[field.name]
        if pa.types.is_string(field.type):
            values = [
                None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                for v in col.tolist()
            ]
            arrays.append(pa.array(values, type=pa.string()))
        else:
            arrays.append(pa.array(col.to_numpy(), type=field.type))
    return arrays


def write_predictions(
    path: str | os.PathLike,
    store: ModelStore,
    X: np.ndarray,
    meta: pd.DataFrame,
    gene_idx: np.ndarray,
    chunk_cells: int = 1000,
    file_metadata: dict | None = None,
    h5ad_path: str | os.PathLike | None = None,
    executor=None,
) -> dict:
    """Predict and write cells x genes to Parquet (and optionally ``.h5ad``), chunk by chunk.

    Parquet layout: ``cell_id`` (str), the metadata and flag columns of ``meta``, then one
    float32 column per gene; one row group per chunk of cells. Read it with
    ``pd.read_parquet(path).set_index("cell_id")`` (or ``columns=[...]`` for a few genes).
    ``file_metadata`` is stored as JSON under the key ``ephys2expr`` of the file metadata.
    Both files are written to temporary paths and renamed only when complete.
    ``executor`` (optional, :mod:`ephys2expr.executor`) computes the chunks on Dask
    workers; this process writes them in order, so the files are the same bytes.

    Returns
    -------
    dict
        ``values_below_zero``: fraction of predicted values < 0. Log2(TPM + 1) cannot be
        negative, so these are the linear models extrapolating past zero expression.
    """
    all_genes = store.gene_names  # a property that builds a list: call it once
    genes = [all_genes[i] for i in gene_idx]
    clash = sorted(set(genes) & ({ID_COLUMN} | set(meta.columns)))
    if clash:
        raise InputError(f"model store: gene name(s) {clash} clash with metadata column names")
    if len(meta) != len(X):
        raise ValueError("meta and X have different numbers of cells")
    meta_schema = _meta_schema(meta)
    schema = pa.schema(list(meta_schema) + [pa.field(g, pa.float32()) for g in genes])
    schema = schema.with_metadata(
        {"ephys2expr": json.dumps(file_metadata or {}, sort_keys=True, default=str)}
    )
    # Statistics and dictionaries only for the metadata: on ~40,000 float columns of
    # near-unique values they cost write time and bytes and buy nothing.
    meta_names = [f.name for f in meta_schema]
    string_meta = [f.name for f in meta_schema if pa.types.is_string(f.type)]

    with contextlib.ExitStack() as stack:
        tmp_pq = stack.enter_context(atomic_path(path))
        writer = stack.enter_context(
            pq.ParquetWriter(
                tmp_pq,
                schema,
                compression="snappy",
                use_dictionary=string_meta,
                write_statistics=meta_names,
            )
        )
        h5 = None
        if h5ad_path is not None:
            tmp_h5 = stack.enter_context(atomic_path(h5ad_path))
            h5 = stack.enter_context(_H5adWriter(tmp_h5, store, meta, gene_idx, file_metadata))
        n_done, n_negative = 0, 0
        for sl, block in iter_predictions(store, X, gene_idx, chunk_cells, executor):
            arrays = _meta_arrays(meta.iloc[sl], meta_schema) + list(block)
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            if h5 is not None:
                h5.write(sl, block)
            n_done = sl.stop
            n_negative += int(np.count_nonzero(block < 0))
            log.info("predicted %d / %d cells x %d genes", n_done, len(X), len(genes))
    total = len(X) * len(genes)
    return {"values_below_zero": round(n_negative / total, 4) if total else 0.0}


class _H5adWriter:
    """Write an AnnData ``.h5ad`` whose dense ``X`` is filled slab by slab.

    obs/var/uns are written by anndata itself; ``X`` is then created with h5py following
    the anndata on-disk spec (dense array, ``encoding-type="array"``,
    ``encoding-version="0.2.0"``) so cells can be streamed in without holding the matrix.
    """

    def __init__(
        self,
        path: Path,
        store: ModelStore,
        meta: pd.DataFrame,
        gene_idx: np.ndarray,
        file_metadata: dict | None,
    ) -> None:
        self.path = Path(path)
        self.store, self.meta, self.gene_idx = store, meta, gene_idx
        self.file_metadata = file_metadata or {}

    def __enter__(self) -> _H5adWriter:
        import anndata as ad
        import h5py

        obs = self.meta.copy()
        for col in obs.columns:
            if obs[col].dtype == object:
                # anndata writes strings as categoricals; None becomes a missing category.
                obs[col] = pd.Categorical(obs[col])
        obs.index = obs.index.astype(str)
        var = self.store.genes.iloc[self.gene_idx].copy()
        var.index = pd.Index([str(g) for g in var.index], name="gene")
        uns = {"ephys2expr": json.dumps(self.file_metadata, sort_keys=True, default=str)}
        adata = ad.AnnData(obs=obs, var=var, uns=uns)
        adata.write_h5ad(self.path)
        self._file = h5py.File(self.path, "a")
        n, g = len(obs), len(var)
        self._x = self._file.create_dataset(
            "X",
            shape=(n, g),
            dtype="float32",
            chunks=(max(1, min(n, 256)), max(1, min(g, 1024))) if n and g else None,
        )
        self._x.attrs["encoding-type"] = "array"
        self._x.attrs["encoding-version"] = "0.2.0"
        return self

    def write(self, sl: slice, block: np.ndarray) -> None:
        self._x[sl, :] = block.T

    def __exit__(self, *exc) -> None:
        self._file.close()


# --------------------------------------------------------------------------- summaries
def screen_summary(meta_all: pd.DataFrame, flags: pd.DataFrame, kept: np.ndarray) -> dict:
    """Counts of cells in/predicted/dropped/imputed/extrapolated, overall and per species."""

    def counts(mask: np.ndarray) -> dict:
        f = flags[mask]
        k = kept[mask]
        n_pred = int(k.sum())
        n_extra = int((f["extrapolated"].to_numpy() & k).sum())
        missing_by_feature: dict[str, int] = {}
        for text in f["missing_features"]:
            for name in filter(None, text.split(",")):
                missing_by_feature[name] = missing_by_feature.get(name, 0) + 1
        return {
            "cells_in": int(len(f)),
            "predicted": n_pred,
            "dropped": int((~k).sum()),
            "imputed": int((f["imputed"].to_numpy() & k).sum()),
            "extrapolated": n_extra,
            "frac_extrapolated": round(n_extra / n_pred, 4) if n_pred else None,
            "cells_missing_feature": dict(sorted(missing_by_feature.items())),
        }

    out = counts(np.ones(len(flags), dtype=bool))
    species = meta_all["species"].to_numpy()
    out["per_species"] = {str(s): counts(species == s) for s in sorted(set(species))}
    return out


def extrapolation_by_feature(
    flags: pd.DataFrame, kept: np.ndarray, features: list[str]
) -> dict[str, int]:
    """Number of predicted cells outside the tolerated training range, per feature."""
    out = dict.fromkeys(features, 0)
    for text in flags.loc[kept, "extrapolated_features"]:
        for name in filter(None, text.split(",")):
            out[name] += 1
    return out


def _preview(values, n: int = 5) -> str:
    values = [str(v) for v in values]
    more = f" ... ({len(values)} in all)" if len(values) > n else ""
    return "[" + ", ".join(values[:n]) + "]" + more


# --------------------------------------------------------------------------- one input
@dataclass
class CellInput:
    """One input table, read and screened, ready to predict (nothing written yet)."""

    name: str
    path: Path
    meta: pd.DataFrame  # all input cells: metadata columns
    screen: ScreenResult

    @property
    def kept_meta(self) -> pd.DataFrame:
        """Metadata + flags of the predicted cells, in input order."""
        flags = self.screen.flags.loc[self.screen.kept, FLAG_COLUMNS]
        return pd.concat([self.meta.loc[self.screen.kept], flags], axis=1)

    def summary(self) -> dict:
        return screen_summary(self.meta, self.screen.flags, self.screen.kept)


def load_cells(
    path: str | os.PathLike,
    store: ModelStore,
    screen: CellScreen,
    name: str | None = None,
    id_column: str | None = None,
    species: str | None = None,
) -> CellInput:
    """Read and check one table and screen its cells against the store's training rows."""
    path = Path(path)
    cells = read_cell_table(path, id_column=id_column)
    features = check_feature_columns(cells, store.features, str(path))
    meta = cell_metadata(cells, species=species)
    result = screen.transform(features)
    item = CellInput(name=name or path.stem, path=path, meta=meta, screen=result)
    s = item.summary()
    log.info(
        "%s: %d cells in, %d predicted, %d dropped, %d imputed, %d extrapolated",
        item.name,
        s["cells_in"],
        s["predicted"],
        s["dropped"],
        s["imputed"],
        s["extrapolated"],
    )
    for sp, c in s["per_species"].items():
        log.info(
            "%s: %s: %d in, %d predicted, %d dropped, %d imputed, %d extrapolated (missing: %s)",
            item.name,
            sp,
            c["cells_in"],
            c["predicted"],
            c["dropped"],
            c["imputed"],
            c["extrapolated"],
            c["cells_missing_feature"] or "none",
        )
    return item


def marker_predictions(
    store: ModelStore, X: np.ndarray, gene_idx: np.ndarray, index: pd.Index
) -> pd.DataFrame:
    """Predicted log2 expression of the :data:`MARKER_GENES` among the selected genes."""
    all_genes = store.gene_names
    selected = {all_genes[i]: i for i in gene_idx}
    markers = [m for m in MARKER_GENES if m in selected]
    rows = [selected[m] for m in markers]
    values = X @ store.coef.to_numpy(dtype=float)[rows].T + store.intercept[rows]
    return pd.DataFrame(values, index=index, columns=markers)
