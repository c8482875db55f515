"""One model per feature set: the store holds them, predict gives each cell the set of exactly
the features it has (never fewer) and records it, and a table with too few features is one
clear error."""

from __future__ import annotations

import json
import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Lasso
from sklearn.preprocessing import StandardScaler

from ephys2expr.errors import InputError
from ephys2expr.model.estimator import MultiGeneElasticNet
from ephys2expr.model.ood import bound_features
from ephys2expr.model.store import (
    EXPRESSION_RANGE,
    join_feature_sets,
    save_model_store,
    store_from_estimator,
)
from ephys2expr.predict.inputs.screen import CellScreen
from ephys2expr.predict.quality import trusted_genes
from ephys2expr.train.settings import TrainSettings
from tests.helpers import predict_table
from tests.test_predict import _cells
from tests.train_data import small_real_inputs

SETS = {
    "full": [],
    "no_tau_cap": ["tau", "cap"],
    "no_aphw_maxfreq_adratio": ["aphw", "maxfreq", "adratio"],
}


def _store(raw_dir, beats: dict[str, float] | None = None):
    """A store of the three sets on the real 20 types; ``beats[set]`` = share of genes marked
    as beating every baseline (what the selection rule ranks by; default: fewer per set)."""
    features, targets, _ = small_real_inputs(raw_dir, n_variable=40, n_flat=10)
    beats = beats or {"full": 0.5, "no_tau_cap": 0.4, "no_aphw_maxfreq_adratio": 0.3}
    models = []
    for name, drop in SETS.items():
        cols = [f for f in features.columns if f not in drop]
        est = MultiGeneElasticNet(penalty="lasso", alpha=0.05).fit(
            features[cols].to_numpy(), targets.T.to_numpy()
        )
        n = len(targets)
        per_gene = pd.DataFrame(
            {
                "cv_r2": np.linspace(-0.5, 0.9, n),
                "beats_mean": np.arange(n) < beats[name] * n,
                "q_value": np.linspace(0, 0.2, n),
            },
            index=targets.index,
        )
        models.append(
            store_from_estimator(
                est, features[cols], targets.index, per_gene, {"params": {}}, feature_set=name
            )
        )
    return join_feature_sets(models), features, targets


@pytest.fixture(scope="module")
def store(raw_dir):
    return _store(raw_dir)


def _patterned_cells() -> pd.DataFrame:
    """Real-scale cells with every missing pattern the Allen tables have."""
    cells = _cells(n_mouse=40, n_human=0, seed=3)
    cells.loc[cells.index[0:5], ["tau", "cap"]] = np.nan  # -> no_tau_cap
    cells.loc[cells.index[5:10], ["aphw", "maxfreq", "adratio"]] = np.nan  # -> no_aphw_...
    cells.loc[cells.index[10:12], ["adratio"]] = np.nan  # -> no set has exactly its features
    cells.loc[cells.index[12:15], ["tau", "cap", "adratio"]] = np.nan  # -> no set
    cells.loc[cells.index[15], ["rin", "rmp", "apthr", "apamp", "aphw", "tau", "cap"]] = np.nan
    return cells


STORE_FEATURES = [
    "rin",
    "rmp",
    "apthr",
    "apamp",
    "aphw",
    "tau",
    "ahpamp",
    "rheo",
    "maxfreq",
    "cap",
    "adratio",
]


def _expected_sets(cells) -> list[str]:
    out = []
    for _, row in cells.iterrows():
        miss = set(row.index[row.isna()]) & set(STORE_FEATURES)
        fits = [n for n, drop in SETS.items() if miss == set(drop)]
        out.append(fits[0] if fits and len(miss) <= len(STORE_FEATURES) - 5 else "")
    return out


def test_each_cell_gets_the_set_of_exactly_its_features(store):
    s, _, _ = store
    cells = _patterned_cells()
    screen = CellScreen("feature_set").fit(s).transform(cells)
    assert list(screen.flags["feature_set"]) == _expected_sets(cells)
    # row 3 also lacks aphw (_cells), 10-11 only adratio, 12-14 adratio besides tau and cap:
    # no set has exactly their features (never fewer); 15 has 4 of the 11 features
    assert set(cells.index[[3, 10, 11, 12, 13, 14, 15]]) <= set(cells.index[~screen.kept])
    reasons = screen.flags.loc[~screen.kept, "reason"]
    few = "fewer than cells.min_features = 5 of the store's 11 features (has 4)"
    assert reasons[cells.index[15]] == few
    assert set(reasons.drop(cells.index[15])) == {
        "no feature set of the store has exactly its features"
    }
    assert (screen.flags.loc[screen.kept, "reason"] == "").all()
    assert not screen.flags["imputed"].any()
    # drop and impute keep to the full set
    drop = CellScreen("drop").fit(s).transform(cells)
    assert set(drop.flags.loc[drop.kept, "feature_set"]) == {"full"}
    imp = CellScreen("impute").fit(s).transform(cells)
    assert imp.kept.all() and set(imp.flags["feature_set"]) == {"full"}


def test_a_cell_never_loses_a_feature_it_has(store):
    """Every predicted cell's ``features_used`` are exactly the store features it has."""
    s, _, _ = store
    cells = _patterned_cells()
    screen = CellScreen("feature_set").fit(s).transform(cells)
    for cell, used in screen.flags.loc[screen.kept, "features_used"].items():
        has = [f for f in STORE_FEATURES if pd.notna(cells.at[cell, f])]
        assert used.split(",") == has
    complete = cells[STORE_FEATURES].notna().all(axis=1).to_numpy()
    assert set(screen.flags.loc[complete, "feature_set"]) == {"full"}


def _invoke(tmp_path, s, table: pd.DataFrame, *extra) -> tuple:
    tmp_path.mkdir(parents=True, exist_ok=True)
    save_model_store(s, tmp_path / "model")
    return predict_table(tmp_path, tmp_path / "model", table, *extra)


def test_cli_records_the_set_per_cell_and_predicts_with_that_sets_model(tmp_path, store):
    """The h5ad's ``feature_set`` column and the metrics' counts; each cell's values are its
    set's model: scikit-learn's Lasso on that set's standardised features gives them."""
    s, features, targets = store
    cells = _patterned_cells()
    res, out = _invoke(tmp_path, s, cells)
    assert res.exit_code == 0, res.output
    adata = ad.read_h5ad(out)
    expected = [e for e in _expected_sets(cells) if e]
    kept = [c for c, e in zip(cells.index, _expected_sets(cells), strict=True) if e]
    assert list(adata.obs_names) == kept and list(adata.obs["feature_set"]) == expected
    report = json.loads((tmp_path / "r.json").read_text())
    counts = report["inputs"]["cells"]["by_feature_set"]
    assert counts == {n: expected.count(n) for n in SETS}
    for name, drop in SETS.items():
        cols = [f for f in features.columns if f not in drop]
        rows = [c for c, e in zip(kept, expected, strict=True) if e == name]
        scaler = StandardScaler().fit(features[cols])
        for gene in ("Pvalb", "Sst"):
            ref = Lasso(alpha=0.05, tol=1e-12, max_iter=100_000).fit(
                scaler.transform(features[cols]), targets.loc[gene, features.index]
            )
            m = s.model(name)  # a cell beyond the range is moved into it first
            moved = bound_features(
                cells.loc[rows, cols].to_numpy(float), m.scaler_mean, m.feature_min, m.feature_max
            )
            moved = pd.DataFrame(moved, columns=cols)
            want = np.clip(ref.predict(scaler.transform(moved)), *EXPRESSION_RANGE)
            got = adata[rows, gene].X.ravel() if gene in adata.var_names else None
            if got is None:  # constant in every set: left out of the file (genes: varying)
                assert np.allclose(want, want[0])
                continue
            np.testing.assert_allclose(got, want, atol=2e-4)


def test_h5ad_holds_every_sets_quality_and_each_cells_trusted_genes(tmp_path, store):
    """varm tables (genes x sets) are each set's own per-gene quality; the documented one-liner
    gives each cell the genes its own set trusts (beats every baseline, q < fdr_q)."""
    s, _, _ = store
    res, out = _invoke(tmp_path, s, _patterned_cells())
    assert res.exit_code == 0, res.output
    adata = ad.read_h5ad(out)
    for name in SETS:
        g = s.model(name).genes.loc[adata.var_names]
        np.testing.assert_array_equal(adata.varm["cv_r2"][name], g["cv_r2"])
        np.testing.assert_array_equal(adata.varm["beats_mean"][name], g["beats_mean"])
        want = g["beats_mean"] & (g["q_value"] < 0.1)
        assert 0 < want.sum() < len(want)
        np.testing.assert_array_equal(adata.varm["trusted"][name], want)
    # the one-liner of docs/predict-your-cells.md and ephys2expr.predict.quality
    trusted = adata.varm["trusted"][adata.obs["feature_set"]].T.set_axis(adata.obs_names)
    pd.testing.assert_frame_equal(trusted, trusted_genes(adata))
    for cell in adata.obs_names:
        g = s.model(adata.obs.at[cell, "feature_set"]).genes.loc[adata.var_names]
        want = (g["beats_mean"] & (g["q_value"] < 0.1)).to_numpy()
        np.testing.assert_array_equal(trusted.loc[cell].to_numpy(), want)
    assert adata.uns["ephys2expr"]["sets_without_null"] is None or not len(
        adata.uns["ephys2expr"]["sets_without_null"]
    )


def test_rerun_gives_the_same_bytes(tmp_path, store):
    """Same store and cells of several sets: the same h5ad bytes (h5py stamps no times)."""
    s, _, _ = store
    outs = []
    for _ in range(2):  # in the same place: the file records where its input came from
        res, out = _invoke(tmp_path, s, _patterned_cells())
        assert res.exit_code == 0, res.output
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_a_table_without_tau_and_cap_columns_uses_the_set_without_them(tmp_path, store):
    s, _, _ = store
    cells = _patterned_cells().iloc[15:].drop(columns=["tau", "cap"])
    res, out = _invoke(tmp_path, s, cells)
    assert res.exit_code == 0, res.output
    obs = ad.read_h5ad(out, backed="r").obs
    has_set = cells[s.model("no_tau_cap").features].notna().all(axis=1)  # row 20 lacks maxfreq
    assert set(obs["feature_set"]) == {"no_tau_cap"} and list(obs.index) == list(
        cells.index[has_set]
    )


def test_a_table_with_too_few_features_is_one_line_listing_features_and_sets(tmp_path, store):
    s, _, _ = store
    cells = _patterned_cells()[["rin", "rmp", "tau", "cap", "cre_line"]]
    res, out = _invoke(tmp_path, s, cells)
    assert res.exit_code == 2
    message = res.output.strip()
    assert "\n" not in message, message
    assert (
        "cells.csv: its columns hold 4 of the model's features (rin, rmp, tau, cap), "
        "fewer than cells.min_features = 5" in message
    )
    assert "no_tau_cap (rin, rmp, apthr, apamp, aphw, ahpamp, rheo, maxfreq, adratio)" in message
    assert not out.parent.exists() or not any(out.parent.iterdir())
    assert not (tmp_path / "m.json").exists()


def test_feature_sets_setting_is_checked():
    ok = TrainSettings.from_params({"train": {"feature_sets": "{a: [tau], full: []}"}})
    assert list(ok.feature_sets.items()) == [("full", []), ("a", ["tau"])]  # full set first
    assert ok.resolve_feature_sets(["rin", "tau", "cap"]) == {
        "full": ["rin", "tau", "cap"],
        "a": ["rin", "cap"],
    }
    derived = {"full": ["rin", "tau", "cap"], "no_tau_cap": ["rin"], "no_tau": ["rin", "cap"]}
    assert ok.resolve_feature_sets(["rin", "tau", "cap"], derived) == {
        "full": ["rin", "tau", "cap"],
        "no_tau_cap": ["rin"],
        "a": ["rin", "cap"],
    }
    user_only = TrainSettings.from_params({"train": {"feature_sets": {"a": ["tau"]}}})
    assert list(user_only.resolve_feature_sets(["rin", "tau"])) == ["full", "a"]
    for value, message in (
        ({"a": [], "full": []}, "found ['a', 'full']"),
        ({"full": [], "b": ["tua"]}, "feature_sets.b: unknown feature 'tua'"),
        ({"full": [], "b c": ["tau"]}, "set name 'b c'"),
        ([], "expected a mapping"),
    ):
        with pytest.raises(InputError, match=re.escape(message)):
            TrainSettings.from_params({"train": {"feature_sets": value}})
    only = TrainSettings.from_params({"train": {"feature_sets": {"full": [], "x": ["sag"]}}})
    assert list(only.resolve_feature_sets(["rin", "tau"])) == ["full"]  # same features: skipped
    with pytest.raises(InputError, match="leaves out every feature"):
        TrainSettings.from_params(
            {"train": {"feature_sets": {"full": [], "x": ["rin"]}}}
        ).resolve_feature_sets(["rin"])


def test_human_cells_are_predicted_by_a_set_without_tau_and_reported_by_dendrite_type(
    tmp_path, store
):
    """Human cells (no tau/cap in Allen v10) get the set without them; the report gives the
    markers' median per species and dendrite type, from the values in the file."""
    s, _, _ = store
    cells = _cells(n_mouse=22, n_human=16, seed=5)  # _cells leaves NaNs in rows 3-20
    res, out = _invoke(tmp_path, s, cells, "--report", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    adata = ad.read_h5ad(out)
    human = adata.obs["species"] == "human"
    assert human.sum() == 16 and set(adata.obs.loc[human, "feature_set"]) == {"no_tau_cap"}
    report = json.loads((tmp_path / "r.json").read_text())["inputs"]["cells"]
    by_type = report["markers_by_species_and_dendrite_type"]["human"]
    assert sum(v["n_cells"] for v in by_type.values()) == 16
    for dtype, entry in by_type.items():
        rows = human & (adata.obs["dendrite_type"] == dtype)
        gene = next(g for g in ("Pvalb", "Sst", "Gad1") if g in adata.var_names)
        assert entry[gene] == pytest.approx(float(np.median(adata[rows, gene].X)), abs=1e-3)


def test_every_real_allen_cell_with_5_features_gets_a_set_of_exactly_its_features(raw_dir):
    """The real v6 and v10 tables: the sets derived from their missing patterns (every
    pattern with >= 5 features) predict every cell with >= 5 of the 11 features, each with
    exactly the features it has; nothing is dropped for a missing pattern."""
    from ephys2expr.prepare.run import read_cell_inputs
    from ephys2expr.train.feature_sets import derive_feature_sets, missing_patterns

    tables, _ = read_cell_inputs(raw_dir)  # what prepare writes as cells_aibs_v6 / _v10
    features, targets, _ = small_real_inputs(raw_dir, n_variable=5, n_flat=1)
    feats = list(features.columns)
    sets = derive_feature_sets(feats, missing_patterns(tables, feats), 5)
    assert {"full", "no_tau_cap", "no_aphw_maxfreq_adratio", "no_aphw"} <= set(sets)
    models = []
    for name, cols in sets.items():
        est = MultiGeneElasticNet(penalty="lasso", alpha=0.05).fit(
            features[cols].to_numpy(), targets.T.to_numpy()
        )
        models.append(
            store_from_estimator(
                est, features[cols], targets.index, None, {"params": {}}, feature_set=name
            )
        )
    screen = CellScreen("feature_set").fit(join_feature_sets(models))
    for cells in tables.values():
        flags = screen.transform(cells).flags
        has = cells.reindex(columns=feats).notna()
        enough = (has.sum(axis=1) >= 5).to_numpy()
        kept = (flags["feature_set"] != "").to_numpy()
        assert (kept == enough).all() and enough.sum() > 1000
        for cell, used in flags.loc[kept, "features_used"].items():
            assert used.split(",") == [f for f in feats if has.at[cell, f]]
