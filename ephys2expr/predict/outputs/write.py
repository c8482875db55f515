"""Predict in chunks of cells and write them: Parquet (cells x genes) and AnnData ``.h5ad``.

Prediction is one matrix product per chunk of cells, computed by the model store's one
prediction function (:func:`ephys2expr.model.store.linear_predict`), never a loop over
per-gene models. Outputs are written chunk by chunk (Parquet row groups, HDF5 slabs), so
memory stays bounded by ``chunk_cells x n_genes`` whatever the input size.

The predicted values are log2 expression on the training table's scale (log2 of the
type mean of ``2^log2(TPM+1)``). They are stored as float32: seven significant digits are
far below the models' out-of-fold error, and float32 halves the file size.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.executor import chunk_slices
from ephys2expr.io import writing
from ephys2expr.model.ood import bound_features
from ephys2expr.model.store import ModelStore, apply_mixture, linear_predict
from ephys2expr.predict.inputs.cells import ID_COLUMN
from ephys2expr.predict.intervals import interval_bounds, interval_terms
from ephys2expr.predict.outputs.h5ad import H5adWriter
from ephys2expr.predict.outputs.output_set import OutputSet
from ephys2expr.predict.outputs.parquet import ParquetWriter
from ephys2expr.temps import raise_if_stopped

log = logging.getLogger("ephys2expr.predict")

PREDICTION_DTYPE = np.float32
# the interval layers (h5ad) and the Parquet columns <gene>|lower, <gene>|upper


def iter_predictions(
    store: ModelStore,
    X: np.ndarray,
    gene_idx: np.ndarray,
    chunk_cells: int,
    executor=None,
    cell_sets: np.ndarray | None = None,
    interval_level: float | None = None,
) -> Iterator[tuple[slice, np.ndarray, tuple | None]]:
    """Yield ``(cell slice, genes x cells float32 block, bounds)`` for consecutive chunks.

    ``bounds``: with ``interval_level``, the prediction intervals ``(lower, upper)``, genes
    x cells float16 (:func:`~ephys2expr.predict.intervals.interval_bounds`); else None.

    Each block is :func:`~ephys2expr.model.store.linear_predict` of the store's float32
    prediction terms for ``gene_idx``: ``coef @ (X - centre).T + offset``, centred on the
    training means so the float32 terms stay small (on the real Allen cells the result
    differs from the float64 product by < 1e-5 log2 units; float32 storage alone rounds by
    ~2e-6), and ~5x faster than float64 because the product (11 features deep) is bound by
    memory traffic. Genes-major blocks make each gene's values contiguous, as a columnar
    writer wants.

    ``X`` holds the store's features (all of them, in order); ``cell_sets`` gives each
    cell's feature set as a position in ``store.feature_sets`` (default: the full set for
    every cell). A chunk is predicted whole by the model of each set present in it, and each
    cell takes its set's column: a cell's values do not depend on its neighbours' sets.

    With a Dask ``executor`` (:mod:`ephys2expr.executor`) the blocks are computed on the
    workers (the terms are sent to each worker once) and still yielded in order; a block
    depends only on its own cells, so the values are the same bytes.
    """
    if chunk_cells < 1:
        raise InputError(f"chunk size {chunk_cells}: expected >= 1")
    terms = set_terms(store, gene_idx, PREDICTION_DTYPE)
    if interval_level is not None:
        terms = (terms, interval_terms(store, gene_idx, interval_level))
    if cell_sets is None:
        cell_sets = np.zeros(len(X), dtype=np.int64)
    slices = chunk_slices(len(X), chunk_cells)
    if executor is None or executor.client is None:
        for sl in slices:
            yield sl, *_block_and_bounds(terms, X[sl], cell_sets[sl])
        return
    shared = executor.share(terms)
    tasks = ((shared, X[sl], cell_sets[sl]) for sl in slices)
    blocks = executor.map_ordered(_block_and_bounds, tasks, what="cell chunks", total=len(slices))
    for sl, (block, bounds) in zip(slices, blocks, strict=True):
        yield sl, block, bounds


def _block_and_bounds(terms, X: np.ndarray, cell_sets: np.ndarray):
    """``(block, bounds)`` of one chunk: ``terms`` is :func:`set_terms`' list, or a pair
    of it and :func:`~ephys2expr.predict.intervals.interval_terms`' (then ``bounds`` is
    ``(lower, upper)``, else None). Module level (Dask pickles it by reference)."""
    if isinstance(terms, tuple):
        block = predict_block(terms[0], X, cell_sets)
        return block, interval_bounds(
            terms[1],
            X,
            cell_sets,
            block,
            lambda rows: predict_block(terms[0], X[rows], cell_sets[rows], bound=False),
        )
    return predict_block(terms, X, cell_sets), None


def set_terms(store: ModelStore, gene_idx: np.ndarray, dtype=PREDICTION_DTYPE) -> list:
    """Per feature set (store order): its prediction terms for ``gene_idx`` in ``dtype``, the
    positions of its features among the store's, its identity terms (None unless some
    of these genes come through identity: ``train.model: mixture | best``) and its training
    range ``(min, max)``, what :func:`predict_block` takes."""
    return [
        (
            m.prediction_terms(gene_idx, dtype),
            np.array([store.features.index(f) for f in m.features], dtype=np.int64),
            m.mixture_terms(gene_idx),
            (m.feature_min, m.feature_max),
        )
        for m in store.feature_sets.values()
    ]


def predict_block(
    terms: list, X: np.ndarray, cell_sets: np.ndarray, bound: bool = True
) -> np.ndarray:
    """Genes x cells of one chunk: each cell by its feature set's model.

    ``terms[s]`` is ``(prediction terms, feature columns, identity terms, training range)``
    of set ``s``: the linear model's values for the cell moved into the training range
    (:func:`~ephys2expr.model.ood.bound_features`; ``bound=False``: the extrapolated
    linear model, which only the intervals use), with the genes whose kind is a mixture
    replaced by it (:func:`~ephys2expr.model.store.apply_mixture`, the store's own
    formula). Module level, so that it pickles by reference for a Dask worker.
    """
    present = np.unique(cell_sets)
    out = None
    for s in present:
        (coef, offset, centre), cols, mix, (lo, hi) = terms[s]
        # only this set's cells: each set's model on every cell of the chunk cost 9x the
        # products with the 9 sets of a store trained on every missing pattern
        mask = None if len(present) == 1 else cell_sets == s
        Xc = X[:, cols] if mask is None else X[mask][:, cols]
        Xs = bound_features(Xc, centre, lo, hi) if bound else Xc
        block = linear_predict(coef, offset, centre, Xs)
        apply_mixture(block.T, mix, Xc)  # in place (a view), genes x cells
        if mask is None:
            return block
        if out is None:
            out = np.empty((block.shape[0], len(X)), dtype=block.dtype)
        out[:, mask] = block
    return out


def _check_finite(block: np.ndarray, sl: slice, cells: pd.Index, genes: list[str], where: str):
    """Raise (nothing is written then) if a predicted value is NaN or infinite."""
    bad = ~np.isfinite(block)
    if bad.any():
        g, c = (int(i[0]) for i in np.nonzero(bad))
        raise InputError(
            f"{where}: cell {cells[sl.start + c]}: predicted {genes[g]} is {block[g, c]} "
            f"({int(bad.sum())} non-finite value(s) in cells {sl.start + 1}-{sl.stop}); "
            "check the model store and the input values"
        )


def write_predictions(
    path: str | os.PathLike | None,
    store: ModelStore,
    X: np.ndarray,
    meta: pd.DataFrame,
    gene_idx: np.ndarray,
    chunk_cells: int = 1000,
    file_metadata: dict | None = None,
    h5ad_path: str | os.PathLike | None = None,
    executor=None,
    outputs: OutputSet | None = None,
    where: str = "predictions",
    cell_sets: np.ndarray | None = None,
    interval_level: float | None = None,
    parquet_intervals: bool = False,
    obsm: dict | None = None,
    varm: dict | None = None,
) -> dict:
    """Predict and write cells x genes to ``.h5ad`` and/or Parquet, chunk by chunk.

    ``.h5ad`` (``h5ad_path``): AnnData with obs = ``meta``, var = the genes' rows of the
    store's table, ``X`` a chunked HDF5 dataset (see :mod:`ephys2expr.predict.outputs.h5ad`) that
    reads one gene or one cell without loading the rest. Parquet (``path``, optional):
    ``cell_id`` (str), the metadata and flag columns of ``meta``, then one float32 column
    per gene, one row group per chunk of cells; its footer grows with cells x genes, so it
    suits up to some 10,000 cells. ``file_metadata`` is stored as JSON under the key
    ``ephys2expr`` (Parquet file metadata, ``uns``).

    Every block is checked before it is written: a NaN or infinite prediction is an
    :class:`InputError`, never a value in a file. The files are written to the temporary
    paths of ``outputs`` (an :class:`~ephys2expr.predict.outputs.output_set.OutputSet` the caller
    commits) or, without it, to their own set, renamed into place together at the end.
    ``executor`` (optional, :mod:`ephys2expr.executor`) computes the chunks on Dask workers;
    this process writes them in order, so the files are the same bytes. ``cell_sets``:
    each cell's feature set (see :func:`iter_predictions`). ``interval_level``: the
    ``.h5ad`` gets layers ``lower`` and ``upper`` (float16, rounded outward), the Parquet
    file columns ``<gene>|lower`` and ``<gene>|upper`` too with ``parquet_intervals``.
    ``obsm``: tables (cells x columns, rows in ``meta`` order) for the h5ad's obsm, e.g. the
    identity probabilities (:mod:`ephys2expr.predict.identity`). ``varm``: the h5ad's per-set
    quality tables (:func:`~ephys2expr.predict.quality.set_quality`).

    Returns
    -------
    dict
        ``values_below_zero``: fraction of predicted values < 0 (log2(TPM + 1) cannot be
        negative: these are the linear models extrapolating past zero expression), and the
        counts behind it, ``n_below_zero`` and ``n_values``; with ``interval_level`` also
        ``interval_width_mean``, the intervals' mean width.
    """
    all_genes = store.gene_names  # a property that builds a list: call it once
    genes = [all_genes[i] for i in gene_idx]
    _check_request(genes, meta, X, path, h5ad_path)
    file_metadata = file_metadata or {}
    own = outputs is None
    outputs = OutputSet() if own else outputs
    with contextlib.ExitStack() as stack:
        if own:
            stack.enter_context(outputs)
            outputs.plan(path, h5ad_path)
        parquet = (meta, genes, file_metadata, parquet_intervals and interval_level is not None)
        h5ad = (store, meta, gene_idx, file_metadata, chunk_cells)
        h5ad_options = {"intervals": interval_level is not None, "obsm": obsm, "varm": varm}
        writers = _writers(outputs, path, h5ad_path, parquet, h5ad, h5ad_options)
        _enter(stack, writers)
        blocks = iter_predictions(
            store, X, gene_idx, chunk_cells, executor, cell_sets, interval_level
        )
        n_negative, width_sum = _write_blocks(blocks, writers, meta, genes, where, len(X))
    return _write_summary(len(X) * len(genes), n_negative, width_sum, interval_level)


def _check_request(genes, meta, X, path, h5ad_path) -> None:
    """Refuse gene names that clash with metadata, mismatched cells, and nothing to write."""
    clash = sorted(set(genes) & ({ID_COLUMN} | set(meta.columns)))
    if clash:
        raise InputError(f"model store: gene name(s) {clash} clash with metadata column names")
    if len(meta) != len(X):
        raise ValueError("meta and X have different numbers of cells")
    if path is None and h5ad_path is None:
        raise ValueError("nothing to write: give a Parquet path, an h5ad path or both")


def _writers(outputs, path, h5ad_path, parquet: tuple, h5ad: tuple, h5ad_options: dict) -> list:
    """The Parquet and/or h5ad writers, each on its temporary path of ``outputs``
    (``parquet``, ``h5ad``: their arguments after the path)."""
    writers = []
    if path is not None:
        writers.append(ParquetWriter(outputs.temp(path), *parquet))
    if h5ad_path is not None:
        writers.append(H5adWriter(outputs.temp(h5ad_path), *h5ad, **h5ad_options))
    return writers


def _enter(stack: contextlib.ExitStack, writers) -> None:
    """Open every writer on ``stack``; an OS error (disk full) names the file it was writing."""
    for w in writers:
        stack.enter_context(writing(w.path))
        stack.enter_context(w)


def _write_blocks(blocks, writers, meta, genes, where, n_cells) -> tuple[int, float]:
    """Check and write each predicted block: ``(negative values, sum of interval widths)``."""
    n_negative, width_sum = 0, 0.0
    for sl, block, bounds in blocks:
        raise_if_stopped()
        _check_finite(block, sl, meta.index, genes, where)
        for w in writers:
            with writing(w.path):
                w.write(sl, block, bounds)
        n_negative += int(np.count_nonzero(block < 0))
        if bounds is not None:
            width_sum += float((bounds[1].astype(np.float64) - bounds[0]).sum())
        log.info("predicted %d / %d cells x %d genes", sl.stop, n_cells, len(genes))
    return n_negative, width_sum


def _write_summary(total, n_negative, width_sum, interval_level) -> dict:
    """What :func:`write_predictions` returns (values below zero, interval width)."""
    return {
        "values_below_zero": round(n_negative / total, 4) if total else 0.0,
        "n_below_zero": n_negative,
        "n_values": total,
        # mean width of the prediction intervals (log2 units) over cells and genes written
        **(
            {"interval_width_mean": round(width_sum / total, 4) if total else 0.0}
            if interval_level is not None
            else {}
        ),
    }


def genes_path(dst: str | os.PathLike) -> Path:
    """Per-gene table beside the predictions: ``x.parquet`` -> ``x.genes.parquet``."""
    dst = Path(dst)
    return dst.with_name(dst.stem + ".genes.parquet")


__all__ = [
    "PREDICTION_DTYPE",
    "genes_path",
    "iter_predictions",
    "predict_block",
    "set_terms",
    "write_predictions",
]
