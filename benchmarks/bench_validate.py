"""Benchmark of the validate stage's pieces (not a test; prints timings and ratios).

1. log2(CPM + 1) of a synthetic count matrix of the full GSE71585 size (24,057 genes x
   1,809 cells): the vectorised :func:`ephys2expr.readers.counts.log2_cpm` against a per-cell
   loop (:func:`log2_cpm_loop` below) and against the original notebook's
   pure-Python double loop (timed on a slice of genes and scaled up linearly; labelled).
2. The reader end to end (:func:`ephys2expr.readers.counts.read_geo_counts`: CSV parse +
   normalisation) on a GSE71585-layout CSV of --csv-cells cells.
3. With ``--stage``: the whole validate stage on the real data (needs ``dvc repro predict``
   first), wall time.

Run: ``.venv/bin/python -m benchmarks.bench_validate [--stage]``. Timings on a shared
2-core machine are noisy: the best of ``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.timing import best_of
from ephys2expr.readers.counts import log2_cpm, read_geo_counts

N_GENES, N_CELLS = 24_057, 1_809


def log2_cpm_loop(counts: np.ndarray) -> np.ndarray:
    """Per-cell loop version of :func:`log2_cpm` (the benchmark's baseline, as the original)."""
    counts = np.asarray(counts, dtype=float)
    out = np.empty_like(counts)
    for j in range(counts.shape[1]):
        col = counts[:, j]
        tot = col.sum()
        out[:, j] = np.log2((col * 1e6 / tot if tot > 0 else col * 0.0) + 1.0)
    return out


def python_double_loop(counts: np.ndarray) -> np.ndarray:
    """The original's approach: per cell, per gene, in Python."""
    n_genes, n_cells = counts.shape
    out = np.empty_like(counts)
    for j in range(n_cells):
        total = 0.0
        for i in range(n_genes):
            total += counts[i, j]
        for i in range(n_genes):
            out[i, j] = np.log2(counts[i, j] / total * 1e6 + 1.0)
    return out


def synthetic_counts(seed: int = 0) -> np.ndarray:
    """Sparse-ish counts like single-cell RNA-seq (most genes zero in a cell)."""
    rng = np.random.default_rng(seed)
    mean = rng.lognormal(mean=0.0, sigma=2.0, size=N_GENES)[:, None]
    return rng.poisson(mean * rng.uniform(0.5, 1.5, size=(1, N_CELLS))).astype(float)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--python-genes",
        type=int,
        default=300,
        help="genes of the pure-Python loop slice (scaled to the full size)",
    )
    ap.add_argument("--csv-cells", type=int, default=300, help="cells of the CSV reader test")
    ap.add_argument("--stage", action="store_true", help="also time the whole stage")
    args = ap.parse_args()

    counts = synthetic_counts()
    print(f"synthetic counts: {N_GENES} genes x {N_CELLS} cells, {(counts == 0).mean():.0%} zeros")
    fast = log2_cpm(counts)
    np.testing.assert_allclose(fast, log2_cpm_loop(counts), rtol=1e-12)
    t_fast = best_of(lambda: log2_cpm(counts), args.repeat)
    t_loop = best_of(lambda: log2_cpm_loop(counts), args.repeat)
    sl = counts[: args.python_genes]
    t_py_slice = best_of(lambda: python_double_loop(sl), 1)
    t_py = t_py_slice * N_GENES / args.python_genes
    print(f"log2(CPM+1) vectorised        : {t_fast:8.3f} s")
    print(f"log2(CPM+1) per-cell loop     : {t_loop:8.3f} s  (x{t_loop / t_fast:.1f} slower)")
    print(
        f"log2(CPM+1) Python double loop: {t_py:8.1f} s  (x{t_py / t_fast:.0f} slower; "
        f"extrapolated from {args.python_genes} genes)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "GSE71585_RefSeq_counts.csv"
        sub = pd.DataFrame(
            counts[:, : args.csv_cells].astype(np.int64),
            index=pd.Index([f"G{i}" for i in range(N_GENES)], name="gene"),
            columns=[f"cell_{j}" for j in range(args.csv_cells)],
        )
        sub.to_csv(path)
        t_read = best_of(lambda: read_geo_counts(path), args.repeat)
        print(
            f"read_geo_counts ({N_GENES} x {args.csv_cells} CSV): {t_read:.2f} s "
            f"(~{t_read * N_CELLS / args.csv_cells:.1f} s scaled to {N_CELLS} cells)"
        )

    if args.stage:
        # the stage as DVC runs it (settings from params.yaml), outputs to temp folders
        tmp = Path(tempfile.mkdtemp())
        cmd = [
            sys.executable,
            "-m",
            "stages.validate",
            "--out-dir",
            str(tmp / "data"),
            "--plots-dir",
            str(tmp / "plots"),
            "--metrics",
            str(tmp / "metrics.json"),
            "--report",
            str(tmp / "report.json"),
        ]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        print(f"validate stage (real data): {time.perf_counter() - t:.1f} s wall")


if __name__ == "__main__":
    main()
