"""Prediction intervals: crepes' quantiles, coverage on held-out animals, the store and the
predict outputs (layers, uns, Parquet switch), predicting without any refit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ephys2expr.model.intervals import (
    LEVELS,
    GeneIntervals,
    conformal_quantile,
    fit_scale,
    scale_values,
)
from ephys2expr.model.store import (
    join_feature_sets,
    load_model_store,
    save_model_store,
    store_from_estimator,
)
from ephys2expr.prepare.per_cell import paired_training_tables
from ephys2expr.prepare.settings import PrepareSettings
from ephys2expr.readers.scala import read_scala2021
from ephys2expr.scaling import scaler_stats
from ephys2expr.train.evaluate import train_and_evaluate
from ephys2expr.train.settings import TrainSettings
from ephys2expr.train.uncertainty.intervals import INTERVAL_NEIGHBORS, oof_distances


@pytest.fixture(scope="module")
def trained(raw_dir):
    """The real Scala cells (1,070 cells, 258 animals), 150 genes, trained as train@scala2021
    does (grouped 5-fold outer CV; a short alpha path, no null): the result and inputs."""
    settings = PrepareSettings()
    paired = read_scala2021(raw_dir, feature_names=settings.paired_features)
    features, targets, types, _ = paired_training_tables(paired, settings, "scala2021")
    targets = targets.iloc[:150]
    train = TrainSettings.from_params({"train": {"n_alphas": 8, "n_permutations": 0}})
    result = train_and_evaluate(features, targets, types, train)
    return features, targets, types, result


def _residuals(trained):
    features, targets, _, result = trained
    Y = targets[list(features.index)].to_numpy(dtype=float).T
    oof = result.oof[list(features.index)].to_numpy(dtype=float).T
    return features.to_numpy(dtype=float), Y, oof


def test_numpy_quantiles_give_crepes_intervals_on_real_residuals(trained):
    crepes = pytest.importorskip("crepes")
    X, Y, oof = _residuals(trained)
    res = Y - oof
    mean, scale = scaler_stats(X)
    params = fit_scale("features", np.abs(res), X, None, mean, scale)
    sigma = scale_values(params, X, None)
    n_cal = 800  # calibrate on these rows, intervals for the others
    q_plain = conformal_quantile(np.abs(res[:n_cal]), LEVELS)
    q_norm = conformal_quantile(np.abs(res[:n_cal]) / sigma[:n_cal], LEVELS)
    for g in range(0, Y.shape[1], 10):
        plain = crepes.ConformalRegressor().fit(res[:n_cal, g])
        norm = crepes.ConformalRegressor().fit(res[:n_cal, g], sigmas=sigma[:n_cal, g])
        for i, level in enumerate(LEVELS):
            ref = plain.predict_int(oof[n_cal:, g], confidence=level)
            np.testing.assert_allclose(ref[:, 1] - oof[n_cal:, g], q_plain[i, g], rtol=1e-12)
            ref = norm.predict_int(oof[n_cal:, g], sigmas=sigma[n_cal:, g], confidence=level)
            ours = np.column_stack(
                [
                    oof[n_cal:, g] - q_norm[i, g] * sigma[n_cal:, g],
                    oof[n_cal:, g] + q_norm[i, g] * sigma[n_cal:, g],
                ]
            )
            np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
    # where (1 - level)(n + 1) is an integer crepes' float product drops a rank: with 19
    # leave-one-out residuals at 0.9 it takes the largest, the conformal rule the 2nd
    scores = np.arange(1.0, 20.0)[:, None]
    assert conformal_quantile(scores, [0.9])[0, 0] == 18.0
    crepes_q = crepes.ConformalRegressor().fit(scores[:, 0]).predict_int(np.zeros(1), 0.9)
    assert crepes_q[0, 1] == 19.0


def test_intervals_cover_held_out_animals_at_their_level(trained):
    """Calibrated on four folds' out-of-fold residuals, checked on the fifth fold's cells
    (other animals): neither the calibration nor the difficulty model saw them."""
    features, _, types, result = trained
    X, Y, oof = _residuals(trained)
    distance = oof_distances(X, result.folds)
    groups = types.loc[features.index, "group"].to_numpy()
    width = {}
    for method in ("plain", "features", "knn"):
        covered, widths = [], []
        for tr, te in result.folds:
            assert not set(groups[tr]) & set(groups[te])
            m, s = scaler_stats(X[tr])
            iv = GeneIntervals.calibrate(
                method,
                np.abs(Y[tr] - oof[tr]),
                X[tr],
                distance[tr],
                m,
                s,
                pd.RangeIndex(Y.shape[1]),
                list(features.columns),
                INTERVAL_NEIGHBORS,
            )
            half = iv.half_width(X[te], 0.9, distance[te])
            covered.append(np.abs(Y[te] - oof[te]) <= half)
            widths.append(2 * half)
        cov = np.concatenate(covered).mean()
        assert 0.88 <= cov <= 0.92, (method, cov)
        width[method] = np.concatenate(widths).mean()
    assert width["features"] < 0.97 * width["plain"]  # adaptive: narrower at that coverage
    report = result.report["intervals"]
    chosen = report["methods"][report["method"]]
    assert report["method"] == "features" and 0.88 <= chosen["coverage"] <= 0.92
    assert chosen["min_coverage_in_a_group"] >= 0.85
    assert set(chosen["coverage_by_family"]) == {"CT", "ET", "IT", "Lamp5", "Pvalb", "Sst", "Vip"}
    curve = chosen["calibration"]
    assert all(abs(curve[k] - float(k)) < 0.02 for k in curve)


def test_coverage_per_row_is_held_out_and_binned_by_ood_score(trained):
    """Each cell's coverage (share of its genes inside the chosen 90 % interval, calibrated
    without its fold) averages to the reported coverage, and cv_ood sets it against the OOD
    score per bin (the ood_vs_error figure's red line)."""
    from ephys2expr.train.uncertainty.ood import cv_ood

    features, targets, _, result = trained
    cov = result.row_coverage
    assert cov.shape == (len(features),) and np.all((cov >= 0) & (cov <= 1))
    report = result.report["intervals"]
    assert cov.mean() == pytest.approx(report["methods"][report["method"]]["coverage"], abs=1e-4)
    # recomputed by hand for the held-out cells of one fold
    X, Y, oof = _residuals(trained)
    distance = oof_distances(X, result.folds)
    tr, te = result.folds[0]
    m, s = scaler_stats(X[tr])
    iv = GeneIntervals.calibrate(
        report["method"],
        np.abs(Y[tr] - oof[tr]),
        X[tr],
        distance[tr],
        m,
        s,
        pd.RangeIndex(Y.shape[1]),
        list(features.columns),
        INTERVAL_NEIGHBORS,
    )
    half = iv.half_width(X[te], 0.9, distance[te])
    by_hand = (np.abs(Y[te] - oof[te]) <= half + 1e-12).mean(axis=1)
    np.testing.assert_allclose(cov[te], by_hand, atol=2 / Y.shape[1])  # clipping at 0 aside
    table, ood = cv_ood(features, result.oof, targets, result.folds, cov)
    bins = ood["bins"]
    n = sum(b["n"] for b in bins.values())
    pooled = sum(b["n"] * b["interval_coverage"] for b in bins.values() if b["n"])
    assert n == len(features) and pooled / n == pytest.approx(cov.mean(), abs=1e-3)
    np.testing.assert_array_equal(table["interval_coverage"].to_numpy(), cov)


@pytest.fixture(scope="module")
def store_dir(trained, tmp_path_factory):
    """The trained full and no_tau_cap sets in one saved store (knn intervals for the
    second, so that predict's kNN distances are exercised too)."""
    features, targets, _, result = trained
    X, Y, oof = _residuals(trained)
    full = store_from_estimator(
        result.final,
        features,
        targets.index,
        result.per_gene,
        {"params": {}},
        intervals=result.intervals,
    )
    cols = [c for c in features.columns if c not in ("tau", "cap")]
    fast = TrainSettings.from_params({"train": {"n_alphas": 8, "n_permutations": 0}})
    sub = train_and_evaluate(features[cols], targets, trained[2], fast)
    Xs = features[cols].to_numpy(dtype=float)
    m, s = scaler_stats(Xs)
    oof_s = sub.oof[list(features.index)].to_numpy(dtype=float).T
    knn = GeneIntervals.calibrate(
        "knn",
        np.abs(Y - oof_s),
        Xs,
        oof_distances(Xs, sub.folds),
        m,
        s,
        targets.index,
        cols,
        INTERVAL_NEIGHBORS,
    )
    other = store_from_estimator(
        sub.final,
        features[cols],
        targets.index,
        sub.per_gene,
        feature_set="no_tau_cap",
        intervals=knn,
    )
    folder = tmp_path_factory.mktemp("store") / "scala"
    save_model_store(join_feature_sets([full, other]), folder)
    return folder


def test_store_round_trip_keeps_the_intervals(store_dir, trained):
    store = load_model_store(store_dir)
    assert store.primary.intervals.method == "features"
    assert store.model("no_tau_cap").intervals.method == "knn"
    assert store.model("no_tau_cap").intervals.k == INTERVAL_NEIGHBORS
    pd.testing.assert_frame_equal(
        store.primary.intervals.table, trained[3].intervals.table, check_names=False
    )


def _predict(store, X, tmp_path, cell_sets, **kw):
    from ephys2expr.predict.outputs.write import write_predictions

    meta = pd.DataFrame({"species": "mouse"}, index=[f"c{i}" for i in range(len(X))])
    meta.index.name = "cell_id"
    gene_idx = np.arange(len(store.primary.genes))
    paths = {"h5ad_path": tmp_path / "p.h5ad", "path": tmp_path / "p.parquet"}
    write_predictions(
        paths["path"],
        store,
        X,
        meta,
        gene_idx,
        chunk_cells=150,
        file_metadata={"intervals": {"level": 0.9}},
        h5ad_path=paths["h5ad_path"],
        cell_sets=cell_sets,
        **kw,
    )
    return paths


def test_h5ad_gets_lower_and_upper_layers_around_x(store_dir, trained, tmp_path):
    import anndata as ad

    from ephys2expr.predict.outputs.read import file_metadata, read_predictions

    store = load_model_store(store_dir)
    X = trained[0].to_numpy(dtype=float)[:400]
    sets = np.repeat([0, 1], 200)  # half the cells by the knn set
    paths = _predict(store, X, tmp_path, sets, interval_level=0.9, parquet_intervals=True)
    adata = ad.read_h5ad(paths["h5ad_path"])
    assert set(adata.layers) == {"lower", "upper"}
    for name in ("lower", "upper"):
        assert adata.layers[name].shape == adata.X.shape == (400, 150)
        assert adata.layers[name].dtype == np.float16
    lower, upper = (adata.layers[n].astype(float) for n in ("lower", "upper"))
    assert (lower >= 0).all() and (lower <= adata.X).all() and (adata.X <= upper).all()
    # the bounds are the store's: prediction -+ q * sigma, rounded outward to float16
    pred = store.primary.predict(X[:200]).astype(np.float32)
    half = store.primary.intervals.half_width(X[:200], 0.9)
    np.testing.assert_allclose(upper[:200], np.minimum(pred + half, 19.94), atol=0.016)
    assert (upper[:200] >= np.minimum(pred + half, np.log2(1e6 + 1)) - 1e-6).all()
    assert file_metadata(paths["h5ad_path"])["intervals"]["level"] == 0.9
    genes = list(store.primary.genes.index[[3, 0]])
    for fmt in ("h5ad_path", "path"):
        got, _ = read_predictions(paths[fmt], genes=genes, layer="upper")
        assert list(got.columns) == genes
        np.testing.assert_allclose(got.to_numpy(), adata[:, genes].layers["upper"])


def test_no_intervals_without_the_switch_and_old_files_say_so(store_dir, trained, tmp_path):
    import anndata as ad

    from ephys2expr.errors import InputError
    from ephys2expr.predict.outputs.read import read_predictions

    store = load_model_store(store_dir)
    X = trained[0].to_numpy(dtype=float)[:50]
    paths = _predict(store, X, tmp_path, None, interval_level=0.9)  # parquet_intervals off
    assert set(ad.read_h5ad(paths["h5ad_path"]).layers) == {"lower", "upper"}
    with pytest.raises(InputError, match="no prediction intervals"):
        read_predictions(paths["path"], layer="lower")


def test_predict_needs_no_refit(store_dir, trained, tmp_path, monkeypatch):
    """A loaded store predicts its intervals with every fitting function broken."""
    import anndata as ad

    import ephys2expr.model.intervals as mi
    import ephys2expr.train.uncertainty.intervals as ti

    store = load_model_store(store_dir)
    X = trained[0].to_numpy(dtype=float)[:300]
    sets = np.repeat([0, 1], 150)
    before = ad.read_h5ad(_predict(store, X, tmp_path, sets, interval_level=0.8)["h5ad_path"])

    def broken(*args, **kwargs):
        raise AssertionError("predict refitted something")

    fitting = {
        mi: ("fit_scale", "conformal_quantile"),
        ti: ("chunk_intervals", "gather_intervals", "oof_distances"),
    }
    for module, names in fitting.items():
        for name in names:
            monkeypatch.setattr(module, name, broken)
    monkeypatch.setattr(GeneIntervals, "calibrate", broken)
    again = load_model_store(store_dir)
    out = tmp_path / "again"
    out.mkdir()
    after = ad.read_h5ad(_predict(again, X, out, sets, interval_level=0.8)["h5ad_path"])
    for name in ("lower", "upper"):
        np.testing.assert_array_equal(before.layers[name], after.layers[name])


def test_bounds_kernel_is_the_numpy_formula_bit_for_bit(store_dir, trained):
    """Real predictions and half-widths of the store; a third of the cells far from the
    range, their extrapolations spread past 0 and the ceiling; some unbounded intervals."""
    from ephys2expr.model.intervals import chunk_bounds, chunk_bounds_numpy

    store = load_model_store(store_dir)
    X = trained[0].to_numpy(dtype=float)[:500]
    pred = np.ascontiguousarray(store.primary.predict(X).astype(np.float32).T)
    half = np.ascontiguousarray(store.primary.intervals.half_width(X, 0.9).T)
    rng = np.random.default_rng(0)
    half[rng.random(half.shape) < 0.01] = np.inf
    beyond = rng.random(pred.shape[1]) < 0.33
    raw = pred[:, beyond] + rng.normal(0, 8, (pred.shape[0], int(beyond.sum())))
    limits = (0.0, float(np.log2(1e6 + 1)))
    got = chunk_bounds(pred, half, beyond, raw, limits)
    want = chunk_bounds_numpy(pred, half, beyond, raw, limits)
    assert (got[0] < want[1]).any() and (got[0] == limits[0]).any()  # the cases happen
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
