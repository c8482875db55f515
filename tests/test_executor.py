"""Chunked and Dask execution give the results of the in-process run (issue 6).

Real training inputs (the 20 real cell types, ~150 genes: markers, the most variable and
some nearly constant genes) are trained three ways - in-process as one chunk (today's
default), in-process in gene chunks read from Parquet, and in gene chunks on a 2-worker
``LocalCluster`` - and must agree to 1e-12; prediction written by a 2-worker cluster must
be the same bytes as in-process.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from ephys2expr.errors import InputError
from ephys2expr.executor import ExecutorSettings, chunk_slices, open_executor
from ephys2expr.model.estimator import MultiGeneElasticNet
from ephys2expr.model.ood import bound_features
from ephys2expr.model.store import (
    EXPRESSION_RANGE,
    ModelStore,
    join_feature_sets,
    store_from_estimator,
)
from ephys2expr.predict.outputs.write import write_predictions
from ephys2expr.train.evaluate import train_and_evaluate
from ephys2expr.train.inputs import ParquetTargets
from tests.train_data import small_real_inputs, train_settings

SETTINGS = dict(n_alphas=10, n_permutations=12, null_stop_after=4)


def executor_settings(**values) -> ExecutorSettings:
    return ExecutorSettings.from_params({"executor": values})


@pytest.fixture(scope="module")
def real(raw_dir):
    return small_real_inputs(raw_dir, n_variable=100, n_flat=40)


@pytest.fixture(scope="module")
def cluster():
    """A real 2-process LocalCluster (1 thread each), closed after the module."""
    with open_executor(executor_settings(kind="local", n_workers=2, threads_per_worker=1)) as ex:
        yield ex


@pytest.fixture(scope="module")
def reference(real):
    features, targets, types = real
    return train_and_evaluate(features, targets, types, train_settings(**SETTINGS))


def _assert_same_training(a, b):
    pa, pb = a.per_gene, b.per_gene
    assert list(pa.columns) == list(pb.columns) and pa.index.equals(pb.index)
    for col in pa.columns:
        x, y = pa[col].to_numpy(), pb[col].to_numpy()
        if pa[col].dtype == bool:
            np.testing.assert_array_equal(x, y, err_msg=col)
        else:
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12, err_msg=col)
    np.testing.assert_allclose(a.oof.to_numpy(), b.oof.to_numpy(), rtol=0, atol=1e-12)
    for attr in ("coef_", "intercept_", "alpha_", "cv_mse_"):
        np.testing.assert_allclose(
            getattr(a.final, attr), getattr(b.final, attr), rtol=0, atol=1e-12, err_msg=attr
        )
    np.testing.assert_array_equal(a.final.converged_, b.final.converged_)
    np.testing.assert_array_equal(a.final.alphas_, b.final.alphas_)
    for key in ("model", "baselines", "genes_beating", "null", "final_model"):
        assert a.report[key] == b.report[key], key


def test_reference_run_is_not_trivial(reference):
    # the comparison below means something only if the null and the fits did real work
    pg = reference.per_gene
    assert pg["n_nonzero"].gt(0).sum() > 10
    assert pg["n_permutations"].nunique() > 1  # some genes stopped early, others did not
    assert pg["p_value"].min() < 0.2 and pg["q_value"].max() <= 1.0


def test_gene_chunks_from_parquet_match_one_chunk(real, reference, tmp_path):
    features, targets, types = real
    path = tmp_path / "targets.parquet"
    targets.rename_axis("gene").reset_index().to_parquet(path, row_group_size=23)
    source = ParquetTargets(path, list(features.index))
    assert len(source) == len(targets)
    chunked = train_and_evaluate(features, source, types, train_settings(**SETTINGS), gene_chunk=50)
    _assert_same_training(reference, chunked)
    # BH is applied to all genes together, not per chunk
    assert len(targets) > 50


def test_local_cluster_matches_in_process(real, reference, cluster):
    features, targets, types = real
    on_dask = train_and_evaluate(
        features, targets, types, train_settings(**SETTINGS), executor=cluster, gene_chunk=40
    )
    _assert_same_training(reference, on_dask)


def _store_from(result, features) -> ModelStore:
    return store_from_estimator(result.final, features, result.per_gene.index, result.per_gene)


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_prediction_on_local_cluster_is_the_same_bytes(real, reference, cluster, tmp_path):
    features, _, _ = real
    store = _store_from(reference, features)
    # 3,000 realistic cells: real type feature vectors with cell-to-cell scatter
    rng = np.random.default_rng(0)
    X = features.to_numpy()
    rows = rng.integers(0, len(X), 3000)
    Xc = X[rows] * rng.lognormal(0, 0.1, size=(3000, X.shape[1]))
    meta = pd.DataFrame(
        {"cre_line": features.index[rows].astype(str)},
        index=pd.Index([f"cell{i}" for i in range(3000)], name="cell_id"),
    )
    gene_idx = np.arange(len(store.primary.genes))
    out = {}
    for name, ex in (("inprocess", None), ("dask", cluster)):
        pq_path, h5_path = tmp_path / f"{name}.parquet", tmp_path / f"{name}.h5ad"
        write_predictions(
            pq_path, store, Xc, meta, gene_idx, chunk_cells=700, h5ad_path=h5_path, executor=ex
        )
        out[name] = (pq_path, h5_path)
    assert _md5(out["inprocess"][0]) == _md5(out["dask"][0])
    got = pd.read_parquet(out["dask"][0]).set_index("cell_id")
    moved = bound_features(
        Xc, store.primary.scaler_mean, store.primary.feature_min, store.primary.feature_max
    )
    expected = moved @ store.primary.coef.to_numpy().T + store.primary.genes["intercept"].to_numpy()
    expected = np.clip(expected, *EXPRESSION_RANGE)  # what a log2(x + 1) value can be
    np.testing.assert_allclose(got[list(store.primary.genes.index)].to_numpy(), expected, atol=1e-4)
    import anndata as ad

    a, b = ad.read_h5ad(out["inprocess"][1]), ad.read_h5ad(out["dask"][1])
    np.testing.assert_array_equal(a.X, b.X)


def test_several_feature_sets_on_local_cluster_are_the_same_bytes(
    real, reference, cluster, tmp_path
):
    """Each cell by its own set's model, whichever process computes its chunk: the same
    bytes, and each cell's values those of its set's model alone."""
    features, targets, _ = real
    cols = [f for f in features.columns if f not in ("tau", "cap")]
    sub = MultiGeneElasticNet("lasso", alpha=0.05).fit(
        features[cols].to_numpy(), targets.T.to_numpy()
    )
    store = join_feature_sets(
        [
            _store_from(reference, features),
            store_from_estimator(sub, features[cols], targets.index, feature_set="no_tau_cap"),
        ]
    )
    rng = np.random.default_rng(1)
    X = features.to_numpy()[rng.integers(0, len(features), 2000)]
    sets = rng.integers(0, 2, len(X))  # chunks of 300 cells mix both sets
    meta = pd.DataFrame(index=pd.Index([f"c{i}" for i in range(len(X))], name="cell_id"))
    gene_idx = np.arange(len(store.primary.genes))
    paths = {}
    for name, ex in (("inprocess", None), ("dask", cluster)):
        paths[name] = tmp_path / f"{name}.parquet"
        write_predictions(
            paths[name], store, X, meta, gene_idx, chunk_cells=300, executor=ex, cell_sets=sets
        )
    assert _md5(paths["inprocess"]) == _md5(paths["dask"])
    got = pd.read_parquet(paths["dask"]).set_index("cell_id")[list(store.primary.genes.index)]
    for s, model in enumerate(store.feature_sets.values()):
        rows = sets == s
        want = model.predict(X[rows][:, [list(features.columns).index(f) for f in model.features]])
        np.testing.assert_allclose(got.to_numpy()[rows], want, atol=1e-4)


def test_executor_settings_and_slices():
    with pytest.raises(InputError, match="executor.kind"):
        executor_settings(kind="slurm")
    with pytest.raises(InputError, match="executor.address"):
        executor_settings(kind="address", address="")
    with pytest.raises(InputError, match="gene_chunk"):
        executor_settings(gene_chunk=-1)
    assert chunk_slices(10, 0) == [slice(0, 10)]
    assert chunk_slices(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert chunk_slices(0, 4) == []


def test_in_process_executor_runs_chunks_in_order():
    with open_executor() as ex:
        assert ex.client is None and ex.n_workers == 1
        assert list(ex.map_ordered(divmod, [(7, 2), (9, 4)])) == [(3, 1), (2, 1)]
