"""Feature sets fitted on demand: equal to the pipeline's, cached, used by the CLI."""

from __future__ import annotations

import dataclasses
import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ephys2expr.model.store import SCHEMA_VERSION, load_model_store, save_model_store
from ephys2expr.train.on_demand import fit_feature_set
from ephys2expr.train.run import train_from_prepared
from stages.predict import app
from tests.helpers import as_schema_5, without_set
from tests.train_data import train_settings, write_small_prepared

FAST = {"n_alphas": 8, "n_permutations": 20}


@pytest.fixture(scope="module")
def trained(raw_dir, tmp_path_factory):
    """A store trained by the train stage's function on small real inputs (its derived sets
    full and no_tau_cap, plus no_adratio and cadwell), saved and loaded back."""
    prepared = write_small_prepared(raw_dir, tmp_path_factory.mktemp("prepared"))
    out = train_from_prepared(
        prepared, train_settings(**FAST), cell_inputs=["aibs_v6", "aibs_v10"], min_features=5
    )
    folder = tmp_path_factory.mktemp("store") / "model"
    save_model_store(out.store, folder)
    return load_model_store(folder), folder


def test_store_carries_its_training_tables(trained):
    store, folder = trained
    meta = json.loads((folder / "model.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION == 6
    assert {"train_targets.parquet", "train_types.parquet"} <= set(meta["files"])
    assert store.train_targets.shape == (len(store.primary.genes), len(store.train_features))
    assert list(store.train_types.columns) == ["broad_type", "weight"]


def test_a_schema_5_store_loads_without_them(trained, tmp_path):
    """Stores of schema 5 (no training targets) still load; they cannot fit sets on demand."""
    import shutil

    from ephys2expr.io import json_md5

    _, folder = trained
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    meta = as_schema_5(old)
    meta["meta_md5"] = json_md5({k: v for k, v in meta.items() if k != "meta_md5"})
    (old / "model.json").write_text(json.dumps(meta))
    store = load_model_store(old)
    assert store.train_targets is None and store.train_features is not None
    with pytest.raises(Exception, match="holds no training targets"):
        fit_feature_set(store, store.features[:6], cache_dir=tmp_path / "cache")


def test_on_demand_set_equals_the_pipelines_and_is_cached(trained, tmp_path):
    """Fitting no_tau_cap on demand from a store without it gives the pipeline's model of
    that set (same CV, null, final fit); a second call reads it from the cache."""
    store, _ = trained
    want = store.model("no_tau_cap")
    lacking = without_set(store, "no_tau_cap")
    got, note = fit_feature_set(lacking, want.features, cache_dir=tmp_path)
    assert got.feature_set == "no_tau_cap" and not note["cached"]
    pd.testing.assert_frame_equal(got.primary.coef, want.coef, atol=1e-12, rtol=0)
    cols = ["intercept", "cv_r2", "alpha", "beats_mean", "beats_ols", "beats_class", "q_value"]
    pd.testing.assert_frame_equal(got.primary.genes[cols], want.genes[cols], atol=1e-12, rtol=0)
    np.testing.assert_allclose(got.primary.scaler_mean, want.scaler_mean, atol=1e-12)
    again, note2 = fit_feature_set(lacking, want.features, cache_dir=tmp_path)
    assert note2["cached"] and note2["cache"] == note["cache"]
    pd.testing.assert_frame_equal(again.primary.coef, got.primary.coef)
    pd.testing.assert_frame_equal(again.primary.genes, got.primary.genes)
    # other settings (the null off) are another cache entry
    off, note3 = fit_feature_set(lacking, want.features, n_permutations=0, cache_dir=tmp_path)
    assert not note3["cached"] and note3["cache"] != note["cache"]
    assert "q_value" not in off.primary.genes or off.primary.genes["q_value"].isna().all()


def test_cli_predicts_a_table_whose_pattern_the_store_lacks(trained, tmp_path):
    """A CSV without tau, cap and adratio: its set is fitted on demand and every cell is
    predicted from its 8 features; with on_demand_null=0 the set has no q-values."""
    store, folder = trained
    cells = store.train_features.drop(columns=["tau", "cap", "adratio"]).copy()
    cells.index = [f"cell{i}" for i in range(len(cells))]
    cells.index.name = "cell_id"
    src = tmp_path / "cells.csv"
    cells.to_csv(src)
    out = tmp_path / "pred.h5ad"
    res = CliRunner().invoke(
        app,
        [
            "--model-dir",
            str(folder),
            "--input",
            str(src),
            "--output",
            str(out),
            "--report",
            str(tmp_path / "r.json"),
            "--set",
            "on_demand_null=0",
            "--set",
            f"cache_dir={tmp_path / 'cache'}",
        ],
    )
    assert res.exit_code == 0, res.output
    adata = ad.read_h5ad(out)
    assert list(adata.obs_names) == list(cells.index)
    assert set(adata.obs["feature_set"]) == {"no_tau_cap_adratio"}
    assert set(adata.obs["features_used"]) == {",".join(cells.columns)}
    assert list(adata.uns["ephys2expr"]["sets_without_null"]) == ["no_tau_cap_adratio"]
    assert adata.varm["q_value"]["no_tau_cap_adratio"].isna().all()
    assert not adata.varm["trusted"]["no_tau_cap_adratio"].any()
    report = json.loads((tmp_path / "r.json").read_text())
    note = report["model"]["on_demand_sets"]["no_tau_cap_adratio"]
    assert note == {"features": list(cells.columns), "n_permutations": 0}
    assert (tmp_path / "cache").is_dir()


def test_a_value_dropped_as_implausible_gets_its_cells_set_fitted_too(trained, tmp_path, caplog):
    """``implausible: drop_value`` makes a negative rin missing; that cell's pattern (no rin
    either) is fitted on demand like the table's own, and every cell is predicted (before,
    the pattern check refused the value and fitted nothing: a table that needed an on-demand
    set lost all its cells). The dropped value is reported once."""
    store, folder = trained
    cells = store.train_features.drop(columns=["tau", "cap", "adratio"]).iloc[:30].copy()
    cells.index = pd.Index([f"cell{i}" for i in range(len(cells))], name="cell_id")
    cells.loc["cell3", "rin"] = -5.0
    src = tmp_path / "cells.csv"
    cells.to_csv(src)
    out = tmp_path / "pred.h5ad"
    args = ["--model-dir", str(folder), "--input", str(src), "--output", str(out)]
    args += ["--set", "on_demand_null=0", "--set", f"cache_dir={tmp_path / 'cache'}"]
    res = CliRunner().invoke(app, [*args, "--set", "implausible=drop_value"])
    assert res.exit_code == 0, res.output
    adata = ad.read_h5ad(out)
    assert list(adata.obs_names) == list(cells.index)
    sets = adata.obs["feature_set"].astype(str)
    assert sets["cell3"] == "no_rin_tau_cap_adratio"
    assert set(sets.drop("cell3")) == {"no_tau_cap_adratio"}
    dropped = [r for r in caplog.records if "outside the plausible range" in r.getMessage()]
    assert len(dropped) == 1, [r.getMessage() for r in dropped]
    # without drop_value the value stays an error naming it
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "rin" in res.output and "-5" in res.output, res.output


def test_the_cache_key_follows_data_settings_features_and_code(trained, monkeypatch):
    """A cached set is reused only for the same training tables, settings, features and
    fitting code (after a code change DVC reruns predict, which must then refit)."""
    from ephys2expr.train import on_demand

    store, _ = trained
    key = on_demand.cache_key(store, store.features[:6], {"seed": 0})
    assert key == on_demand.cache_key(store, store.features[:6], {"seed": 0})
    assert key != on_demand.cache_key(store, store.features[:7], {"seed": 0})
    assert key != on_demand.cache_key(store, store.features[:6], {"seed": 1})
    other = dataclasses.replace(store, train_targets=store.train_targets + 1.0)
    assert key != on_demand.cache_key(other, store.features[:6], {"seed": 0})
    monkeypatch.setattr(on_demand, "code_md5", lambda: "other code")
    assert key != on_demand.cache_key(store, store.features[:6], {"seed": 0})
