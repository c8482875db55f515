"""Benchmark: predictions at scale - the chunked h5ad (now) vs the wide Parquet (before).

Not a test. Each writer runs in its own child process (peak RSS = ``ru_maxrss`` of that
run) on the real model store and cells resampled from the real Allen cells (5 % jitter),
then a fresh process times reading one gene for all cells and one cell for all genes:

* ``parquet_all``: the wide Parquet of every gene, as ``predict`` wrote until #12 (its
  footer and the writer's memory grow with cells x genes);
* ``h5ad_all``: the chunked ``.h5ad`` of every gene (same content, new layout);
* ``h5ad_varying``: the new default, genes whose model is not constant.

Run (the big case needs about 12 GB of disk; ``df -h`` first)::

    python -m benchmarks.bench_predict_scale [--model-dir data/model] [--cells 200000]
        [--compare-cells 50000] [--dir /tmp]

The old writer is timed at ``--compare-cells`` (the same size for all three layouts) and at
half of it, and its time, memory and size extrapolated along that line to ``--cells``; the
new default is also run at ``--cells``. Reads are warm-cache (the file was just written),
as a user's second look.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr import paths
from ephys2expr.features import PLAUSIBLE_RANGE


def _store(model_dir: Path):
    from ephys2expr.model.store import load_model_store

    return load_model_store(model_dir)


def _cells(store, n: int) -> tuple[np.ndarray, pd.DataFrame]:
    """``n`` cells resampled from the real Allen cells with all model features, jittered."""
    # data/prepared/ or data/prepared/<training source>/
    frames = [pd.read_parquet(p) for p in sorted(paths.PREPARED.glob("**/cells_aibs_v*.parquet"))]
    real = pd.concat(frames)[store.features].dropna().to_numpy()
    rng = np.random.default_rng(0)
    X = real[rng.integers(0, len(real), n)] * rng.lognormal(0, 0.05, size=(n, real.shape[1]))
    for j, f in enumerate(store.features):
        lo, hi = PLAUSIBLE_RANGE[f].low, PLAUSIBLE_RANGE[f].high
        X[:, j] = np.clip(X[:, j], lo + 1e-6, hi)
    meta = pd.DataFrame(
        {"species": "mouse", "cre_line": "Pvalb-IRES-Cre", "extrapolated": False},
        index=pd.Index([f"cell{i}" for i in range(n)], name="cell_id"),
    )
    return X, meta


def child_write(case: str, n: int, model_dir: Path, out: Path) -> dict:
    from ephys2expr.predict.outputs.write import write_predictions
    from ephys2expr.predict.run import select_genes

    store = _store(model_dir)
    X, meta = _cells(store, n)
    genes = select_genes(store, "varying" if case == "h5ad_varying" else "all")
    t = time.perf_counter()
    if case == "parquet_all":
        write_predictions(out, store, X, meta, genes, chunk_cells=1000)
    else:
        write_predictions(None, store, X, meta, genes, chunk_cells=1000, h5ad_path=out)
    return {
        "write_s": time.perf_counter() - t,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "file_mb": out.stat().st_size / 2**20,
        "genes": int(len(genes)),
    }


def child_read(path: Path, n: int) -> dict:
    """Time one gene (all cells) and one cell (all genes), each in this fresh process."""
    import anndata  # noqa: F401 - imported before timing: import time is not read time
    import pyarrow.parquet as pq

    from ephys2expr.predict.outputs.read import read_predictions

    gene, cell = "Pvalb", f"cell{n // 2 + 7}"
    t = time.perf_counter()
    if path.suffix == ".parquet":
        g = pq.read_table(path, columns=["cell_id", gene]).to_pandas()
    else:
        g, _ = read_predictions(path, genes=[gene])
    gene_s = time.perf_counter() - t
    t = time.perf_counter()
    if path.suffix == ".parquet":
        # the best a wide Parquet allows: find the cell's row group, read only that one
        pf = pq.ParquetFile(path)
        ids = pf.read(columns=["cell_id"]).column(0).to_pylist()
        row = ids.index(cell)
        ends = np.cumsum([pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
        rg = int(np.searchsorted(ends, row, side="right"))
        start = int(ends[rg - 1]) if rg else 0
        c = pf.read_row_group(rg).slice(row - start, 1).to_pandas()
    else:
        c, _ = read_predictions(path, cells=[cell])
    cell_s = time.perf_counter() - t
    assert len(g) > 0 and len(c) == 1
    return {
        "read_gene_s": gene_s,
        "read_cell_s": cell_s,
        "read_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _child(*args) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_predict_scale", "--child", *map(str, args)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_case(case: str, n: int, model_dir: Path, folder: Path) -> dict:
    out = folder / f"{case}_{n}{'.parquet' if case == 'parquet_all' else '.h5ad'}"
    try:
        result = {"case": case, "cells": n, **_child("write", case, n, model_dir, out)}
        result.update(_child("read", out, n))
    finally:
        out.unlink(missing_ok=True)
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=paths.model_store("rds"))
    ap.add_argument("--cells", type=int, default=200_000)
    ap.add_argument("--compare-cells", type=int, default=50_000)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "write":
            res = child_write(rest[0], int(rest[1]), Path(rest[2]), Path(rest[3]))
        else:
            res = child_read(Path(rest[0]), int(rest[1]))
        print(json.dumps(res))
        return res

    n_small, n_big = args.compare_cells, args.cells
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        half = run_case("parquet_all", n_small // 2, args.model_dir, folder)
        small = {
            c: run_case(c, n_small, args.model_dir, folder)
            for c in ("parquet_all", "h5ad_all", "h5ad_varying")
        }
        big = run_case("h5ad_varying", n_big, args.model_dir, folder)
    old = small["parquet_all"]

    def extrapolated(key: str) -> float:
        """The old writer's ``key`` at ``n_big``: a line through its two measured sizes."""
        slope = (old[key] - half[key]) / (n_small - n_small // 2)
        return old[key] + slope * (n_big - n_small)

    summary = {
        f"at {n_small} cells x all genes: wide Parquet / chunked h5ad": {
            k: old[k] / small["h5ad_all"][k]
            for k in ("write_s", "peak_rss_mb", "read_gene_s", "read_cell_s")
        },
        f"at {n_big} cells: wide Parquet of all genes (extrapolated) / h5ad varying": {
            k: extrapolated(k) / big[k] for k in ("write_s", "peak_rss_mb", "file_mb")
        },
        "wide Parquet extrapolated": {
            k: extrapolated(k)
            for k in ("write_s", "peak_rss_mb", "file_mb", "read_gene_s", "read_cell_s")
        },
        f"h5ad varying peak RSS, {n_big} / {n_small} cells (1 = bounded by the chunk)": (
            big["peak_rss_mb"] / small["h5ad_varying"]["peak_rss_mb"]
        ),
    }
    print(json.dumps(summary, indent=2))
    return {"small": small, "big": big, "summary": summary}


if __name__ == "__main__":
    main()
