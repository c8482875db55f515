"""Benchmark the interval bounds of predicted chunks: the numba kernel against numpy.

Both on the same chunk: the real Allen v10 cells predicted by the type-mean store
(``data/models/rds``, every gene, 1,000 cells, as predict's chunks), their half-widths at
90 %, and the cells beyond the training range with their extrapolated predictions. The
results are checked equal bit for bit. Run::

    python -m benchmarks.bench_bounds
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.timing import best_of
from ephys2expr.model.intervals import chunk_bounds, chunk_bounds_numpy
from ephys2expr.model.ood import range_excess
from ephys2expr.model.store import EXPRESSION_RANGE, load_model_store

CELLS = 1000


def main() -> None:
    store = load_model_store("data/models/rds")
    cells = pd.read_parquet("data/prepared/rds/cells_aibs_v10.parquet")
    X = cells[store.features].dropna().to_numpy(dtype=float)[:CELLS]
    pred = np.ascontiguousarray(store.primary.predict(X).astype(np.float32).T)
    half = np.ascontiguousarray(store.primary.intervals.half_width(X, 0.9).T)
    beyond = range_excess(X, store.primary.feature_min, store.primary.feature_max).max(axis=1) > 0
    raw = pred[:, beyond].astype(float) + 1.0
    args = (pred, half, beyond, raw, EXPRESSION_RANGE)
    for a, b in zip(chunk_bounds(*args), chunk_bounds_numpy(*args), strict=True):
        np.testing.assert_array_equal(a, b)
    kernel = best_of(lambda: chunk_bounds(*args))
    numpy = best_of(lambda: chunk_bounds_numpy(*args))
    print(f"{pred.shape[0]} genes x {pred.shape[1]} cells ({int(beyond.sum())} beyond the range)")
    print(f"numba kernel {kernel:.3f} s, numpy {numpy:.3f} s: {numpy / kernel:.1f}x faster")


if __name__ == "__main__":
    main()
