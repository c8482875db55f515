"""Benchmark the predict stage against the original's way: one scikit-learn model per gene.

Ours: one matrix product per chunk of cells, written as Parquet row groups.
Original: ``model.predict(X)`` for each gene's fitted scikit-learn Lasso in turn, the
columns gathered into a DataFrame and written as a wide CSV.

Both use the same store and the same cells in one run; the ratio is what matters (the
machine is shared, absolute times are noisy). Run::

    python -m benchmarks.bench_predict [--model-dir data/model] [--cells FILE] [--csv-genes N]
        [--params params.yaml] [--set chunk_cells=1000]

Without a model store it builds one of realistic size from ``data/prepared`` (a Lasso fit
per gene on the 20 training types), or a synthetic one if that is missing too. The chunk
size is ``predict.chunk_cells`` of the params file (``--set`` overrides it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import Lasso

from ephys2expr import paths
from ephys2expr.model.estimator import MultiGeneElasticNet
from ephys2expr.model.store import ModelStore, load_model_store, store_from_estimator
from ephys2expr.predict.inputs.cells import check_feature_columns, read_cell_table
from ephys2expr.predict.inputs.screen import CellScreen
from ephys2expr.predict.outputs.write import iter_predictions, write_predictions
from ephys2expr.predict.settings import PredictSettings


def synthetic_store(n_genes: int = 32000, seed: int = 0) -> ModelStore:
    """A store of realistic size: Lasso fits on the prepared training table if present."""
    rng = np.random.default_rng(seed)
    feats_path = paths.PREPARED / "train_features.parquet"
    if feats_path.is_file():
        X = pd.read_parquet(feats_path)
        Y = pd.read_parquet(paths.PREPARED / "train_targets.parquet").iloc[:n_genes]
        targets, genes = Y.to_numpy().T, list(Y.index)
    else:
        from ephys2expr.features import CORE_FEATURES

        X = pd.DataFrame(rng.normal(size=(20, 11)) * 10 + 50, columns=CORE_FEATURES)
        targets = rng.normal(size=(20, n_genes)) + 4
        genes = [f"Gene{i}" for i in range(n_genes)]
    est = MultiGeneElasticNet(penalty="lasso", alpha=0.1).fit(X.to_numpy(), targets)
    return store_from_estimator(est, X, pd.Index(genes, name="gene"))


def per_gene_models(store: ModelStore) -> list[Lasso]:
    """The original's representation: one fitted scikit-learn Lasso per gene."""
    coef = store.primary.coef.to_numpy(dtype=float)
    models = []
    for c, b in zip(coef, store.primary.intercept, strict=True):
        m = Lasso()
        m.coef_, m.intercept_, m.n_features_in_ = c, b, len(c)
        models.append(m)
    return models


def run_benchmark(
    store: ModelStore, X: np.ndarray, csv_genes: int = 2000, chunk_cells: int = 1000
) -> dict:
    """Time ours vs the per-gene loop on cells ``X``; check both give the same numbers."""
    genes = store.gene_names
    gene_idx = np.arange(len(genes))
    out: dict = {"cells": int(len(X)), "genes": len(genes)}

    ours = np.empty((len(genes), len(X)), dtype=np.float32)
    t = time.perf_counter()
    for sl, block, _ in iter_predictions(store, X, gene_idx, chunk_cells):
        ours[:, sl] = block
    out["ours_predict_s"] = time.perf_counter() - t

    models = per_gene_models(store)
    t = time.perf_counter()
    loop = np.column_stack([m.predict(X) for m in models])
    out["sklearn_loop_predict_s"] = time.perf_counter() - t
    out["max_abs_diff"] = float(np.abs(ours.T - loop).max())
    out["predict_speedup"] = out["sklearn_loop_predict_s"] / out["ours_predict_s"]

    meta = pd.DataFrame(
        {"species": ["mouse"] * len(X)},
        index=pd.Index([f"c{i}" for i in range(len(X))], name="cell_id"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_predictions(Path(tmp) / "p.parquet", store, X, meta, gene_idx, chunk_cells)
        out["ours_predict_and_write_parquet_s"] = time.perf_counter() - t
        out["parquet_mb"] = (Path(tmp) / "p.parquet").stat().st_size / 1e6
        # Wide CSV as the original wrote it; timed on csv_genes columns and scaled up,
        # because the full file takes minutes.
        n = min(csv_genes, len(genes))
        frame = pd.DataFrame(loop[:, :n], index=meta.index, columns=genes[:n])
        t = time.perf_counter()
        frame.to_csv(Path(tmp) / "p.csv")
        csv_s = (time.perf_counter() - t) * len(genes) / n
    out["sklearn_loop_predict_and_write_csv_s (csv extrapolated)"] = (
        out["sklearn_loop_predict_s"] + csv_s
    )
    out["end_to_end_speedup"] = (
        out["sklearn_loop_predict_and_write_csv_s (csv extrapolated)"]
        / out["ours_predict_and_write_parquet_s"]
    )
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=paths.model_store("rds"))
    ap.add_argument("--cells", type=Path, default=paths.PREPARED / "cells_aibs_v10.parquet")
    ap.add_argument("--csv-genes", type=int, default=2000)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    settings = PredictSettings.from_params(args.params, args.set)

    if (args.model_dir / "model.json").is_file():
        store, source = load_model_store(args.model_dir), str(args.model_dir)
    else:
        store, source = synthetic_store(), "synthetic (no model store found)"
    cells = read_cell_table(args.cells)
    feats = check_feature_columns(cells, store.features, str(args.cells))
    # Impute so every cell is predicted (the 2,335 cells x all genes).
    X = CellScreen(missing="impute").fit(store).transform(feats).X
    result = {"model": source, **run_benchmark(store, X, args.csv_genes, settings.chunk_cells)}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
