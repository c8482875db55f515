"""The out-of-distribution score on real data: real Allen cells against the real Scala
training cells (a per-cell store) and the real 20 type means (the type-mean store)."""

from __future__ import annotations

import json
import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

from ephys2expr.model.estimator import MultiGeneElasticNet
from ephys2expr.model.ood import NeighborScore, neighbors_k, shift_summary
from ephys2expr.model.store import load_model_store, save_model_store, store_from_estimator
from ephys2expr.predict.inputs.screen import CellScreen
from ephys2expr.prepare.per_cell import read_paired_source
from ephys2expr.prepare.settings import PrepareSettings
from ephys2expr.readers.allen import read_allen_cells
from ephys2expr.scaling import standardise
from tests.helpers import as_schema_5, predict_table
from tests.train_data import small_real_inputs


@pytest.fixture(scope="module")
def scala_store(raw_dir):
    """A store fitted on the real Scala 2021 cells (the per-cell source's 11 features) and a
    few of their real genes: the training rows are what the OOD score needs."""
    settings = PrepareSettings()
    paired = read_paired_source("scala2021", settings, raw_dir)
    features = paired.features[settings.paired_features].astype(float).dropna()
    expression = paired.expression.loc[:, list(features.index)]
    genes = expression.var(axis=1).sort_values().index[-8:]
    est = MultiGeneElasticNet(penalty="lasso", alpha=0.05).fit(
        features.to_numpy(), expression.loc[genes].T.to_numpy(dtype=float)
    )
    return store_from_estimator(est, features, pd.Index(genes), provenance={"params": {}})


@pytest.fixture(scope="module")
def allen_cells(raw_dir) -> pd.DataFrame:
    """The real Allen v6 cells with every feature of the Scala store."""
    cells, _ = read_allen_cells(raw_dir / "aibs" / "aibs_aggregated_ephys_v6.csv")
    return cells


def _shift(cells: pd.DataFrame, store, feature: str, n_sd: float) -> pd.DataFrame:
    """``cells`` with ``feature`` moved by ``n_sd`` training SD (of the store's rows)."""
    out = cells.copy()
    out[feature] = out[feature] + n_sd * store.train_features[feature].std()
    return out


@pytest.mark.parametrize("feature, n_sd", [("cap", 3.0), ("rmp", -3.0)])
def test_cells_shifted_3_sd_in_one_feature_are_flagged_and_the_feature_is_named_first(
    scala_store, allen_cells, feature, n_sd
):
    """Real Allen cells (v6, every feature present) with one feature moved 3 training SD
    (to values still physically possible): >= 95 % flagged; the shift summary names it
    first. (Not every feature gets there: docs/results.md has the table.)"""
    cells = allen_cells[scala_store.features].dropna()
    screen = CellScreen("feature_set").fit(scala_store)
    before = screen.transform(cells).flags
    shifted = _shift(cells, scala_store, feature, n_sd)
    after = screen.transform(shifted).flags
    assert len(cells) > 800
    assert after["ood"].mean() >= 0.95
    assert before["ood"].mean() < 0.5  # the flag is the shift's doing, not every cell's
    shift = shift_summary(scala_store.train_features, shifted, scala_store.features)
    assert next(iter(shift)) == feature


def test_any_one_feature_shifted_3_sd_raises_the_share_flagged_and_is_named_first(
    scala_store, allen_cells
):
    """Every feature, moved 3 training SD upwards (always physically possible): more cells
    flagged than unshifted, and the shift summary names that feature first."""
    cells = allen_cells[scala_store.features].dropna()
    screen = CellScreen("feature_set").fit(scala_store)
    base = screen.transform(cells).flags["ood"].mean()
    for feature in scala_store.features:
        shifted = _shift(cells, scala_store, feature, 3.0)
        assert screen.transform(shifted).flags["ood"].mean() > base, feature
        shift = shift_summary(scala_store.train_features, shifted, scala_store.features)
        assert next(iter(shift)) == feature and shift[feature]["smd"] > 1


def test_training_rows_are_flagged_at_about_the_nominal_rate(scala_store):
    """The real training cells' own (leave-one-out) scores are uniform: about 1 % above 99,
    half above 50."""
    X = standardise(
        scala_store.train_features,
        scala_store.primary.scaler_mean,
        scala_store.primary.scaler_scale,
    )
    scores = NeighborScore(5).fit(X).training_scores()
    assert len(scores) == len(scala_store.train_features) > 1000
    assert 0.005 <= np.mean(scores > 99) <= 0.02
    assert np.median(scores) == pytest.approx(50, abs=1)
    # scored as a new cell, a training row is its own nearest neighbour (distance 0): never
    # further than its leave-one-out score
    scorer = NeighborScore(5).fit(X)
    assert np.all(scorer.score(X) <= scorer.training_scores())


def test_k_for_the_20_type_means(raw_dir):
    """k is capped at the root of the training rows: 4 nearest types of 20, the requested k
    for per-cell stores, none below 2 rows."""
    features, _, _ = small_real_inputs(raw_dir, n_variable=5, n_flat=1)
    assert [neighbors_k(5, n) for n in (1, 2, 5, 20, 36, 1070)] == [0, 1, 2, 4, 5, 5]
    scorer = NeighborScore(5).fit(standardise(features, features.mean(), features.std(ddof=0)))
    assert scorer.k_ == 4 and len(scorer.reference_) == 20
    one_row = NeighborScore(5).fit(features.iloc[:1].to_numpy())
    assert np.isnan(one_row.score(np.zeros((2, 11)))).all()


def _predict(tmp_path, model_dir, cells: pd.DataFrame, *extra):
    res, out = predict_table(tmp_path, model_dir, cells, *extra)
    assert res.exit_code == 0, res.output
    return ad.read_h5ad(out), json.loads((tmp_path / "r.json").read_text())["inputs"]["cells"]


def test_predict_needs_no_refit_and_reports_the_shift(
    tmp_path, scala_store, allen_cells, monkeypatch, caplog
):
    """The saved store alone gives the scores (no estimator is fitted): each cell's score is
    the percentile of its mean distance to its 5 nearest stored training rows among the
    rows' leave-one-out distances, computed here with scikit-learn directly."""
    save_model_store(scala_store, tmp_path / "model")
    cells = allen_cells.dropna(subset=scala_store.features)
    cells = _shift(cells, scala_store, "cap", 3.0)

    def no_fit(*args, **kwargs):
        raise AssertionError("predict refitted a model")

    monkeypatch.setattr(MultiGeneElasticNet, "fit", no_fit)
    with caplog.at_level(logging.INFO, logger="ephys2expr"):
        adata, report = _predict(tmp_path, tmp_path / "model", cells)
    rows = pd.read_parquet(tmp_path / "model" / "train_features.parquet")
    Z = standardise(rows, scala_store.primary.scaler_mean, scala_store.primary.scaler_scale)
    loo = np.sort(NearestNeighbors(n_neighbors=6).fit(Z).kneighbors(Z)[0][:, 1:].mean(axis=1))
    Zc = standardise(
        cells[scala_store.features],
        scala_store.primary.scaler_mean,
        scala_store.primary.scaler_scale,
    )
    d = NearestNeighbors(n_neighbors=5).fit(Z).kneighbors(Zc)[0].mean(axis=1)
    expected = [
        (np.sum(loo < x) + np.sum(loo <= x)) / (2 * len(loo)) * 100 for x in d
    ]  # scipy.stats.percentileofscore(kind="mean")
    np.testing.assert_allclose(adata.obs["ood_score"].to_numpy(), expected, rtol=1e-9)
    assert (adata.obs["ood"] == (adata.obs["ood_score"] > 99)).all()
    assert report["ood"] == int(adata.obs["ood"].sum()) and report["frac_ood"] > 0.9
    first = report["shift"][0]
    assert first["feature"] == "cap" and first["smd"] > 1 and 0 < first["ks"] <= 1
    lines = [r.getMessage() for r in caplog.records if "shifted most" in r.getMessage()]
    assert len(lines) == 1 and lines[0].split(": ", 1)[1].startswith("features shifted most")
    assert "(SMD): cap +" in lines[0] and lines[0].count("(KS") == 3


def test_a_schema_4_store_still_predicts_with_nan_scores_and_one_line(
    tmp_path, scala_store, allen_cells, caplog
):
    from ephys2expr.io import json_md5

    target = tmp_path / "model"
    save_model_store(scala_store, target)
    meta = as_schema_5(target)  # and schema 4 had no training rows either
    (target / "train_features.parquet").unlink()
    del meta["files"]["train_features.parquet"]
    meta["schema_version"] = 4
    meta = {k: v for k, v in meta.items() if k not in ("meta_md5", "identity")}
    (target / "model.json").write_text(json.dumps({**meta, "meta_md5": json_md5(meta)}))
    assert load_model_store(target).train_features is None
    caplog.clear()
    cells = allen_cells.dropna(subset=scala_store.features).iloc[:50]
    with caplog.at_level(logging.INFO, logger="ephys2expr"):
        adata, report = _predict(tmp_path, target, cells)
    assert adata.obs["ood_score"].isna().all() and not adata.obs["ood"].any()
    assert "extrapolated" in adata.obs.columns and report["frac_ood"] is None
    retrain = [r.getMessage() for r in caplog.records if "retrain" in r.getMessage()]
    # one line each: no OOD score, no prediction intervals
    assert len(retrain) == 2 and "ood_score is NaN" in retrain[0]
    assert "no prediction intervals" in retrain[1]


def test_the_training_rows_round_trip_and_an_edit_is_caught(tmp_path, scala_store):
    from tests.helpers import raises_one_line

    save_model_store(scala_store, tmp_path / "model")
    got = load_model_store(tmp_path / "model")
    np.testing.assert_array_equal(
        got.train_features.to_numpy(), scala_store.train_features.to_numpy()
    )
    rows = pd.read_parquet(tmp_path / "model" / "train_features.parquet")
    rows.iloc[0, 0] += 1.0
    rows.to_parquet(tmp_path / "model" / "train_features.parquet")
    raises_one_line(
        "train_features.parquet does not match the md5", load_model_store, tmp_path / "model"
    )
