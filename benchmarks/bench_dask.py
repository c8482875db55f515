"""Benchmark: in-process vs a 2-worker Dask LocalCluster on a synthetic large case (issue 6).

Not a test. Two workloads, each run in a fresh child process per executor so that peak
memory (ru_maxrss) is per run:

1. paired per-cell training: ``--cells`` cells x ``--genes`` genes x 11 features, lasso,
   alpha "auto" (30 alphas, inner 5-fold), 5-fold outer CV (not LOO: with 5,000 rows LOO
   would be 5,000 outer fits per gene), ``--perms`` permutations with the sequential stop
   after 10 exceedances; targets read from Parquet ``--gene-chunk`` genes per task, the
   out-of-fold matrix not gathered (``keep_oof=False``), so no process holds cells x genes;
2. prediction for ``--pred-cells`` cells x ``--pred-genes`` genes streamed to Parquet in
   chunks of ``--chunk-cells`` (one row group each).

Prints wall time, peak RSS of the driver and of each worker, the per-chunk cost, and the
extrapolation to the issue's full size (5,000 x 45,000 with 200 permutations; 200,000 cells
x 45,000 genes) - extrapolated numbers are labelled as such. The machine has 2 shared
cores: timings are noisy. Run: ``python -m benchmarks.bench_dask`` (``--quick`` for a
smaller case).
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

N_FEATURES = 11


def _features(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) @ rng.normal(size=(4, N_FEATURES))
    X = X + 0.5 * rng.normal(size=(n, N_FEATURES))
    return X * rng.uniform(0.1, 200, size=N_FEATURES) + rng.normal(size=N_FEATURES) * 30


def write_targets(path: Path, n: int, g: int, seed: int = 0, block: int = 500) -> None:
    """Genes x cells Parquet (row groups of ``block`` genes); 30% of genes carry signal."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = _features(n, seed)
    Xs = (X - X.mean(0)) / X.std(0)
    rng = np.random.default_rng(seed + 1)
    cols = [f"c{i}" for i in range(n)]
    schema = pa.schema([pa.field("gene", pa.string())] + [pa.field(c, pa.float64()) for c in cols])
    with pq.ParquetWriter(path, schema, compression="snappy") as w:
        for s in range(0, g, block):
            k = min(block, g - s)
            B = rng.normal(size=(N_FEATURES, k)) * (rng.random((N_FEATURES, k)) < 0.2)
            B *= rng.random(k) < 0.3
            scale = rng.lognormal(-1, 0.8, size=k)
            Y = np.clip(2 + (Xs @ B + 2 * rng.normal(size=(n, k))) * scale, 0, None)
            arrays = [pa.array([f"g{s + j}" for j in range(k)])] + list(Y)
            w.write_table(pa.Table.from_arrays(arrays, schema=schema))
    pd.DataFrame(X, index=pd.Index(cols, name="cell_type")).to_parquet(path.with_suffix(".X.pq"))


def _worker_peaks(ex) -> list[float]:
    if ex.client is None:
        return []

    def peak():
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    return sorted(ex.client.run(peak).values())


def _executor_settings(kind: str):
    from ephys2expr.executor import ExecutorSettings

    return ExecutorSettings.from_params(
        {"executor": {"kind": kind, "n_workers": 2, "threads_per_worker": 1}}
    )


def run_train(args) -> dict:
    from ephys2expr.executor import open_executor
    from ephys2expr.train.evaluate import train_and_evaluate
    from ephys2expr.train.inputs import ParquetTargets
    from ephys2expr.train.settings import TrainSettings

    path = Path(args.data)
    feats = pd.read_parquet(path.with_suffix(".X.pq"))
    feats.columns = [f"f{i}" for i in range(feats.shape[1])]
    types = pd.DataFrame({"broad_type": "Exc", "weight": 1.0}, index=feats.index)
    source = ParquetTargets(path, list(feats.index))
    values = {"cv": "kfold", "n_folds": 5, "n_permutations": args.perms, "null_stop_after": 10}
    settings = TrainSettings.from_params({"train": values})
    kind = args.executor
    with open_executor(_executor_settings(kind)) as ex:
        t = time.perf_counter()
        res = train_and_evaluate(
            feats,
            source,
            types,
            settings,
            executor=ex,
            gene_chunk=args.gene_chunk,
            keep_oof=False,
        )
        wall = time.perf_counter() - t
        workers = _worker_peaks(ex)
    sec = res.seconds
    return {
        "wall_s": wall,
        "driver_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_mb": workers,
        "worker_seconds": {
            k: sec[k] for k in ("nested_cv", "baselines", "final_fit", "permutation_null")
        },
        "gene_permutations_run": res.report["null"]["gene_permutations_run"],
        "genes_with_all_permutations": res.report["null"]["genes_with_all_permutations"],
        "cv_r2_median": res.metrics["model"]["r2_median"],
        "p_value_checksum": float(res.per_gene["p_value"].sum()),
        "cv_r2_checksum": float(np.nansum(res.per_gene["cv_r2"])),
    }


def run_predict(args) -> dict:
    from ephys2expr.executor import open_executor
    from ephys2expr.model.estimator import MultiGeneElasticNet
    from ephys2expr.model.store import store_from_estimator
    from ephys2expr.predict.outputs.write import write_predictions

    rng = np.random.default_rng(0)
    g, n = args.pred_genes, args.pred_cells
    X = _features(n, 3)
    # a store built as train builds it: lasso fitted on 300 rows of the same features,
    # about 20 % of the coefficients carrying signal
    fit_rows = pd.DataFrame(_features(300, 3), columns=[f"f{i}" for i in range(N_FEATURES)])
    Xs = (fit_rows - fit_rows.mean()) / fit_rows.std(ddof=0)
    B = rng.normal(size=(N_FEATURES, g)) * (rng.random((N_FEATURES, g)) < 0.2)
    Y = 2 + Xs.to_numpy() @ B + rng.normal(size=(300, g))
    est = MultiGeneElasticNet("lasso", alpha=0.1).fit(fit_rows.to_numpy(), Y)
    gene_names = pd.Index([f"g{i}" for i in range(g)], name="gene")
    store = store_from_estimator(est, fit_rows, gene_names)
    meta = pd.DataFrame({"species": "mouse"}, index=pd.Index([f"c{i}" for i in range(n)]))
    out = Path(args.data)
    kind = args.executor
    with open_executor(_executor_settings(kind)) as ex:
        t = time.perf_counter()
        write_predictions(
            out,
            store,
            X,
            meta,
            np.arange(g),
            chunk_cells=args.chunk_cells,
            executor=None if kind == "inprocess" else ex,
        )
        wall = time.perf_counter() - t
        workers = _worker_peaks(ex)
    import hashlib

    digest = hashlib.md5(out.read_bytes()).hexdigest()
    size = out.stat().st_size
    out.unlink()
    return {
        "wall_s": wall,
        "driver_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_mb": workers,
        "file_mb": size / 2**20,
        "md5": digest,
    }


def child(case: str, executor: str, args, data: Path) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_dask",
        "--child",
        case,
        "--executor",
        executor,
        "--data",
        str(data),
    ] + [
        f"--{k.replace('_', '-')}={getattr(args, k)}"
        for k in (
            "genes",
            "cells",
            "perms",
            "gene_chunk",
            "pred_cells",
            "pred_genes",
            "chunk_cells",
        )
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", default="")
    ap.add_argument("--executor", default="inprocess")
    ap.add_argument("--data", default="")
    ap.add_argument("--cells", type=int, default=5000)
    ap.add_argument("--genes", type=int, default=1000)
    ap.add_argument("--perms", type=int, default=200)
    ap.add_argument("--gene-chunk", type=int, default=250)
    ap.add_argument("--pred-cells", type=int, default=200_000)
    ap.add_argument("--pred-genes", type=int, default=1000)
    ap.add_argument("--chunk-cells", type=int, default=10_000)
    args = ap.parse_args()
    if args.child:
        res = run_train(args) if args.child == "train" else run_predict(args)
        print(json.dumps(res))
        return
    if args.quick:
        args.genes, args.perms, args.pred_cells = 200, 50, 50_000
    report: dict = {"args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "targets.parquet"
        t = time.perf_counter()
        write_targets(data, args.cells, args.genes)
        print(f"wrote {args.cells} cells x {args.genes} genes in {time.perf_counter() - t:.1f} s")
        for kind in ("inprocess", "local"):
            r = child("train", kind, args, data)
            report[f"train_{kind}"] = r
            print(f"train {kind}: {json.dumps(r)}", flush=True)
        for kind in ("inprocess", "local"):
            r = child("predict", kind, args, Path(tmp) / f"pred_{kind}.parquet")
            report[f"predict_{kind}"] = r
            print(f"predict {kind}: {json.dumps(r)}", flush=True)

    # extrapolation from the measured in-process worker time (linear in genes and, for the
    # null, in gene-permutations actually run)
    tr = report["train_inprocess"]
    ws = tr["worker_seconds"]
    per_gene_cv = (ws["nested_cv"] + ws["baselines"] + ws["final_fit"]) / args.genes
    per_gene_perm = ws["permutation_null"] / max(tr["gene_permutations_run"], 1)
    gp_full = tr["gene_permutations_run"] / args.genes * 45_000 * (200 / args.perms)
    full_train = per_gene_cv * 45_000 + per_gene_perm * gp_full
    pr = report["predict_inprocess"]
    full_pred = pr["wall_s"] * (200_000 / args.pred_cells) * (45_000 / args.pred_genes)
    report["extrapolated"] = {
        "train_cpu_seconds_per_gene_cv_refit": per_gene_cv,
        "train_cpu_seconds_per_gene_permutation": per_gene_perm,
        "train_full_5000x45000_200perm_cpu_hours": full_train / 3600,
        "predict_full_200000x45000_seconds_inprocess": full_pred,
        "predict_full_file_gb": pr["file_mb"]
        * (200_000 / args.pred_cells)
        * (45_000 / args.pred_genes)
        / 1024,
        "note": "linear scaling of measured in-process costs; the null's gene-permutations "
        "scale with 200/perms only for genes that never stop early (an upper bound)",
    }
    print(json.dumps(report["extrapolated"], indent=1))
    same_train = tr["p_value_checksum"] == report["train_local"]["p_value_checksum"]
    same_pred = pr["md5"] == report["predict_local"]["md5"]
    print(f"same results in-process and on Dask: train {same_train}, predict md5 {same_pred}")


if __name__ == "__main__":
    main()
