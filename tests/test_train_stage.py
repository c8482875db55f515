"""The train stage end to end: outputs, model store round trip, bad input, and `dvc repro`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from ephys2expr.model.store import load_model_store
from ephys2expr.train.settings import TrainSettings
from ephys2expr.train.summary import HEADLINE_KEYS, headline_metrics
from stages.train import app
from tests.train_data import write_small_prepared

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ROOT / "params.yaml"
FAST = ["--params", str(PARAMS), "--set", "n_alphas=8", "--set", "n_permutations=5"]


@pytest.fixture(scope="module")
def prepared(raw_dir, tmp_path_factory):
    return write_small_prepared(raw_dir, tmp_path_factory.mktemp("prepared"))


@pytest.fixture(scope="module")
def whole(prepared, tmp_path_factory) -> Path:
    """The stage's outputs on the small tables with the FAST settings (one run, shared)."""
    out = tmp_path_factory.mktemp("whole")
    res = _run(prepared, out)
    assert res.exit_code == 0, res.output
    return out


def _run(prepared_dir, out, *extra):
    args = [
        "--prepared-dir",
        str(prepared_dir),
        "--model-dir",
        str(out / "model"),
        "--out-dir",
        str(out / "train"),
        "--metrics",
        str(out / "train.json"),
        "--plots-dir",
        str(out / "plots"),
        "--report",
        str(out / "report.json"),
        *FAST,
        *extra,
    ]
    return CliRunner().invoke(app, args)


def test_stage_writes_a_loadable_store_and_is_deterministic(prepared, whole, tmp_path):
    store = load_model_store(whole / "model")
    targets = pd.read_parquet(prepared / "train_targets.parquet")
    features = pd.read_parquet(prepared / "train_features.parquet")
    assert store.gene_names == list(targets.index)
    assert store.features == list(features.columns)
    assert {"cv_r2", "alpha", "beats_mean", "beats_ols", "beats_class", "q_value"} <= set(
        store.primary.genes.columns
    )
    # the store reproduces the final fit's training predictions in original units
    per_gene = pd.read_parquet(whole / "train" / "per_gene.parquet")
    pred = store.primary.predict(features)
    resid = ((targets.T.to_numpy() - pred) ** 2).sum(0)
    tot = ((targets.T.to_numpy() - targets.T.to_numpy().mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(1 - resid / tot, per_gene["train_r2"], atol=1e-9)
    assert store.provenance["params"]["alpha"] == "auto"
    assert store.provenance["species"] == "unknown"  # these tables have no species column
    assert len(store.provenance["inputs_md5"]) == 3
    metrics = json.loads((whole / "train.json").read_text())
    assert set(metrics) == set(HEADLINE_KEYS)
    for name in (
        "r2_hist",
        "rmse_hist",
        "model_vs_ols",
        "observed_vs_predicted",
        "coef_heatmap",
        "feature_sets",
    ):
        assert (whole / "plots" / f"{name}.png").stat().st_size > 10_000
    # one model per derived feature set (the full set and every missing pattern of the cells
    # tables with >= min_set_cells cells: no_tau_cap, not adratio's 3) and per set of
    # train.feature_sets, each with its own CV: a set without tau and cap scores
    # differently, and its coefficients use only its features
    settings = TrainSettings.from_params(PARAMS)
    expected_sets = ["full", "no_tau_cap", *settings.feature_sets]
    assert list(store.feature_sets) == expected_sets
    sub = store.model("no_tau_cap")
    assert sub.features == [f for f in features.columns if f not in ("tau", "cap")]
    assert not np.allclose(sub.genes["cv_r2"], store.primary.genes["cv_r2"], equal_nan=True)
    table = pd.read_csv(whole / "plots" / "feature_sets.csv", index_col=0)
    assert list(table.index) == expected_sets
    report = json.loads((whole / "report.json").read_text())
    assert (
        table.loc["no_tau_cap", "genes_beating_all"]
        == (report["feature_sets"]["no_tau_cap"]["genes_beating_all"])
    )
    assert table.loc["full", "genes_beating_all"] == report["genes_beating_all_baselines"]
    assert report["missing_patterns"]["no_tau_cap"]["aibs_v10"] == 12
    assert report["missing_patterns"]["no_adratio"]["cells"] == 3
    # headline metrics only: two numbers, no timings; the detail is in the report
    assert metrics == headline_metrics(report)
    assert metrics["r2_50"] == round(report["model"]["r2_median"], 4)
    assert metrics["sig"] == report["null"]["genes_significant_and_beating_all"]
    assert metrics["fam_acc"] is None  # type means: no identity classifier
    assert "seconds" not in report and report["null"]["n_permutations"] == 5
    # same inputs + params -> identical bytes (no timings anywhere, so metrics too)
    assert _run(prepared, tmp_path / "b").exit_code == 0
    for rel in (
        "model/coef.parquet",
        "model/genes.parquet",
        "model/model.json",
        "train/per_gene.parquet",
        "plots/per_gene.csv",
        "plots/feature_sets.csv",
        "train.json",
        "report.json",
    ):
        assert (whole / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_a_pattern_of_few_cells_is_trained_without_its_own_null_and_flagged(prepared, tmp_path):
    """Every pattern of the cells tables with >= cells.min_features features gets its set in
    train (predict fits nothing): adratio's 3 cells too, below train.min_set_cells, so that
    set skips its own permutation null - its q-values are NaN, the report and the feature-set
    table say so - while the sets of many cells keep theirs."""
    res = _run(prepared, tmp_path, "--set", "feature_sets={}", "--set", "alpha=0.05")
    assert res.exit_code == 0, res.output
    store = load_model_store(tmp_path / "model")
    assert list(store.feature_sets) == ["full", "no_tau_cap", "no_adratio"]
    assert store.model("no_adratio").genes["q_value"].isna().all()
    # read back, each set has its own dtypes (predict writes the full set's table to h5ad)
    assert store.primary.genes["significant"].dtype == bool
    assert store.model("no_tau_cap").genes["q_value"].notna().all()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["sets_without_null"] == ["no_adratio"]
    assert report["missing_patterns"]["no_adratio"]["cells"] == 3
    table = pd.read_csv(tmp_path / "plots" / "feature_sets.csv", index_col=0)
    assert table["own_null"].to_dict() == {"full": True, "no_tau_cap": True, "no_adratio": False}
    # with min_set_cells 3 it has its own null like the others
    res = _run(
        prepared,
        tmp_path / "b",
        "--set",
        "feature_sets={}",
        "--set",
        "alpha=0.05",
        "--set",
        "min_set_cells=3",
    )
    assert res.exit_code == 0, res.output
    assert (
        load_model_store(tmp_path / "b" / "model")
        .model("no_adratio")
        .genes["q_value"]
        .notna()
        .all()
    )


def test_fixed_alpha_and_other_cv(prepared, tmp_path):
    res = _run(
        prepared,
        tmp_path,
        "--set",
        "alpha=0.05",
        "-S",
        "cv=kfold",
        "--set",
        "n_folds=4",
        "--set",
        "penalty=elasticnet",
        "--set",
        "train.sample_weight=cells",
    )
    assert res.exit_code == 0, res.output
    store = load_model_store(tmp_path / "model")
    assert np.all(store.primary.genes["alpha"] == 0.05) and store.primary.penalty == "elasticnet"


def test_bad_input_exits_2_with_one_line_and_writes_nothing(prepared, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(prepared, bad)
    f = pd.read_parquet(bad / "train_features.parquet")
    f.iloc[3, 2] = np.nan
    f.to_parquet(bad / "train_features.parquet")
    res = _run(bad, tmp_path / "out")
    assert res.exit_code == 2
    err = res.stderr if hasattr(res, "stderr") else res.output
    assert "train_features.parquet" in err and f.columns[2] in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    res = _run(bad, tmp_path / "out", "--set", "penalty=lars")
    assert res.exit_code == 2 and "train.penalty" in (res.stderr or res.output)


def test_set_overrides_reach_the_settings_and_bad_ones_exit_2(prepared, tmp_path):
    """--set KEY=VALUE (train) and --set executor.KEY=VALUE override params.yaml."""
    res = _run(prepared, tmp_path / "ok", "--set", "alpha=0.1", "--set", "executor.gene_chunk=30")
    assert res.exit_code == 0, res.output
    params = load_model_store(tmp_path / "ok" / "model").provenance["params"]
    # cv "auto" is stored as what it resolved to: leave-one-out for cell-type means; model
    # "best" too: cell-type means have no cells to classify, so lasso
    overridden = {"alpha": 0.1, "n_alphas": 8, "n_permutations": 5, "cv": "loo", "model": "lasso"}
    assert params == {**yaml.safe_load(PARAMS.read_text())["train"], **overridden}
    for args, named in [
        (["--set", "executor.kind=slurm"], "executor.kind"),
        (["--set", "lambda=1"], "train.lambda"),
        (["--set", "validate.seed=1"], "validate"),
        (["--set", "alpha"], "KEY=VALUE"),
    ]:
        res = _run(prepared, tmp_path / "bad", *args)
        assert res.exit_code == 2 and named in (res.stderr or res.output), args
    assert not (tmp_path / "bad").exists()


def test_streamed_targets_give_the_same_models_and_plotted_predictions(prepared, whole, tmp_path):
    """--stream-targets reads the targets a gene chunk at a time; results must not change."""
    stream = tmp_path / "stream"
    res = _run(prepared, stream, "--stream-targets", "--set", "executor.gene_chunk=25")
    assert res.exit_code == 0, res.output
    one, chunked = load_model_store(whole / "model"), load_model_store(stream / "model")
    assert chunked.gene_names == one.gene_names
    np.testing.assert_allclose(
        chunked.primary.coef.to_numpy(), one.primary.coef.to_numpy(), atol=1e-12
    )
    np.testing.assert_allclose(chunked.primary.intercept, one.primary.intercept, atol=1e-12)
    per_gene = {k: pd.read_parquet(k / "train" / "per_gene.parquet") for k in (whole, stream)}
    numeric = per_gene[whole].select_dtypes("number").columns
    np.testing.assert_allclose(per_gene[stream][numeric], per_gene[whole][numeric], atol=1e-12)
    # only the plotted genes' out-of-fold predictions are kept, and they are the same
    oof_stream = pd.read_parquet(stream / "train" / "oof_predictions.parquet")
    oof_whole = pd.read_parquet(whole / "train" / "oof_predictions.parquet")
    assert 0 < len(oof_stream) < len(oof_whole)
    np.testing.assert_allclose(oof_stream, oof_whole.loc[oof_stream.index], atol=1e-12)
