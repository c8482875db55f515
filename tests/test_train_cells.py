"""Training on paired Patch-seq cells (Scala et al. 2021): grouped CV, baselines, ceiling, stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ephys2expr.errors import InputError
from ephys2expr.model.estimator import MultiGeneElasticNet
from ephys2expr.model.path import inner_folds
from ephys2expr.model.store import load_model_store
from ephys2expr.prepare.per_cell import paired_training_tables
from ephys2expr.prepare.settings import PrepareSettings
from ephys2expr.readers.scala import read_scala2021
from ephys2expr.train.cv.baselines import baseline_predictions
from ephys2expr.train.cv.folds import outer_folds, pooled_scores, resolve_cv
from ephys2expr.train.evaluate import resolved_settings, train_and_evaluate
from ephys2expr.train.settings import TrainSettings
from ephys2expr.train.summary import HEADLINE_KEYS
from stages.train import app

ROOT = Path(__file__).resolve().parent.parent
FAST = ["n_alphas=8", "n_permutations=20"]


@pytest.fixture(scope="module")
def cells(raw_dir):
    """The real Scala cells as prepare writes them: 1,070 cells x 11 features, genes >= 10 %."""
    settings = PrepareSettings()
    paired = read_scala2021(raw_dir, feature_names=settings.paired_features)
    features, targets, types, report = paired_training_tables(paired, settings, "scala2021")
    return features, targets, types, report


@pytest.fixture(scope="module")
def small_cells(cells):
    """All cells, 120 genes (the first 100 + markers), for fast end-to-end runs."""
    features, targets, types, _ = cells
    markers = [g for g in ("Pvalb", "Sst", "Vip", "Gad1", "Slc17a7") if g in targets.index]
    genes = list(dict.fromkeys(list(targets.index[:100]) + markers))
    return features, targets.loc[genes], types


def test_prepared_cells_follow_the_contract(cells):
    features, targets, types, report = cells
    assert features.shape == (1070, 11)
    assert list(features.columns) == PrepareSettings().paired_features
    assert list(targets.columns) == list(features.index) == list(types.index)
    assert (types["weight"] == 1.0).all() and types["group"].nunique() == 258
    assert set(types["broad_type"]) == {"Exc", "Inh"}
    assert {"family", "type"} <= set(types.columns)
    # genes detected (count > 0, i.e. log2 CPM > 0) in at least 10 % of cells
    assert ((targets > 0).mean(axis=1) >= 0.1).all()
    assert report["genes_in"] == 1978 and report["genes_kept"] == len(targets) == 1819
    assert report["cells_excluded"] == sum(report["paired"]["excluded"].values())


def test_cv_auto_resolves_by_data(small_cells, raw_dir):
    assert resolve_cv("auto", grouped=True) == "group_kfold"
    assert resolve_cv("auto", grouped=False) == "loo"
    assert resolve_cv("kfold", grouped=True) == "kfold"
    _, _, types = small_cells
    assert resolved_settings(TrainSettings(), types).cv == "group_kfold"
    assert resolved_settings(TrainSettings(), types.drop(columns="group")).cv == "loo"


def test_outer_and_inner_folds_keep_animals_whole(small_cells):
    _, _, types = small_cells
    groups = types["group"].to_numpy()
    folds = outer_folds(len(groups), "group_kfold", 5, cell_groups=groups)
    assert len(folds) == 5
    assert sorted(np.concatenate([te for _, te in folds])) == list(range(len(groups)))
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
        for itr, iva in inner_folds(len(tr), 5, 0, groups[tr]):
            assert not set(groups[tr][itr]) & set(groups[tr][iva])
    with pytest.raises(InputError, match="group_kfold.*'group' column"):
        outer_folds(len(groups), "group_kfold", 5)
    with pytest.raises(InputError, match=r"5 folds for 3 animals \(groups\); set n_folds <= 3"):
        outer_folds(6, "group_kfold", 5, cell_groups=np.array(list("aabbcc")))


def test_grouped_alpha_search_matches_sklearn_lassocv(small_cells):
    """Our grouped inner CV picks the alpha scikit-learn's LassoCV picks on the same splits."""
    from sklearn.linear_model import LassoCV
    from sklearn.preprocessing import StandardScaler

    features, targets, types = small_cells
    X = features.to_numpy()
    groups = types["group"].to_numpy()
    alphas = np.geomspace(1.0, 1e-3, 12)
    splits = inner_folds(len(X), 5, 0, groups)
    # LassoCV standardises once; do the same here so that only the alpha search is compared
    Xs = StandardScaler().fit_transform(X)
    genes = ["Pvalb", "Sst", "Vip"]
    Y = targets.loc[genes].to_numpy().T
    est = MultiGeneElasticNet(
        "lasso", "auto", alphas=alphas, inner_cv=5, random_state=0, standardize=False
    ).fit(Xs, Y, groups=groups)
    for j in range(len(genes)):
        ref = LassoCV(alphas=alphas, cv=splits, tol=1e-12, max_iter=100_000).fit(Xs, Y[:, j])
        # sklearn averages per-fold MSE, we pool it: with near-equal folds the choice agrees
        assert est.alpha_[j] == pytest.approx(ref.alpha_)
        np.testing.assert_allclose(est.coef_[j], ref.coef_, atol=1e-6)
    ungrouped = MultiGeneElasticNet(
        "lasso", "auto", alphas=alphas, inner_cv=5, random_state=0, standardize=False
    ).fit(Xs, Y)
    assert not np.allclose(ungrouped.cv_mse_, est.cv_mse_)  # the grouping is really used


def test_family_ceiling_is_the_held_out_familys_training_mean(small_cells):
    features, targets, types = small_cells
    X, Y = features.to_numpy(), targets.to_numpy().T
    groups, fams = types["group"].to_numpy(), types["family"].to_numpy()
    folds = outer_folds(len(X), "group_kfold", 5, cell_groups=groups)
    base = baseline_predictions(X, Y, folds, None, types["broad_type"].to_numpy(), fams)
    assert set(base) == {"mean", "ols", "class", "family"}
    tr, te = folds[2]
    cell = te[0]
    same = tr[fams[tr] == fams[cell]]
    np.testing.assert_allclose(base["family"][cell], Y[same].mean(axis=0))
    same_class = tr[types["broad_type"].to_numpy()[tr] == types["broad_type"].iloc[cell]]
    np.testing.assert_allclose(base["class"][cell], Y[same_class].mean(axis=0))
    assert "family" not in baseline_predictions(X, Y, folds)  # type means: no ceiling


def test_train_on_cells_reports_the_ceiling_apart(small_cells):
    features, targets, types = small_cells
    settings = TrainSettings.from_params(ROOT / "params.yaml", FAST)
    res = train_and_evaluate(features, targets, types, settings)
    pg = res.per_gene
    assert {"family_cv_r2", "family_cv_rmse"} <= set(pg.columns)
    assert "beats_family" not in pg.columns  # a ceiling, not a baseline to beat
    beats_all = pg[["beats_mean", "beats_ols", "beats_class"]].all(axis=1).sum()
    assert res.report["genes_beating_all_baselines"] == beats_all
    assert set(res.report["ceilings"]["family"]) >= {"r2_median", "frac_r2_gt_0.1"}
    assert res.report["ceilings"]["family"]["r2_median"] == pytest.approx(
        np.nanmedian(pg["family_cv_r2"]), abs=1e-6
    )
    assert res.report["rows"] == "cells"
    assert res.metrics["r2_50"] == round(res.report["model"]["r2_median"], 4)
    assert res.metrics["sig"] == res.report["null"]["genes_significant_and_beating_all"]
    # the markers: the family (true label) explains them better than ephys does
    assert pg.loc["Pvalb", "family_cv_r2"] > pg.loc["Pvalb", "cv_r2"] > 0.2
    # out-of-fold predictions of a gene equal a hand-rolled grouped nested CV
    X, y = features.to_numpy(), targets.loc["Pvalb"].to_numpy()
    groups = types["group"].to_numpy()
    oof = np.empty_like(y)
    for tr, te in outer_folds(len(y), "group_kfold", 5, cell_groups=groups):
        est = settings.estimator().fit(X[tr], y[tr, None], groups=groups[tr])
        oof[te] = est.predict(X[te])[:, 0]
    r2, _ = pooled_scores(y[:, None], oof[:, None])
    assert pg.loc["Pvalb", "cv_r2"] == pytest.approx(r2[0], abs=1e-10)
    # gene chunks (the streaming / Dask paths) give the same result
    chunked = train_and_evaluate(features, targets, types, settings, gene_chunk=37)
    pd.testing.assert_frame_equal(chunked.per_gene, pg, atol=1e-12)


def test_train_stage_on_cells(small_cells, tmp_path):
    features, targets, types = small_cells
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    features.to_parquet(prepared / "train_features.parquet")
    targets.to_parquet(prepared / "train_targets.parquet")
    types.to_parquet(prepared / "train_types.parquet")
    for name in ("aibs_v6", "aibs_v10"):  # the tables the feature sets are derived from
        features.to_parquet(prepared / f"cells_{name}.parquet")
    out = tmp_path / "out"
    args = [
        "--params",
        str(ROOT / "params.yaml"),
        "--prepared-dir",
        str(prepared),
        "--model-dir",
        str(out / "model"),
        "--out-dir",
        str(out / "train"),
        "--plots-dir",
        str(out / "plots"),
        "--metrics",
        str(out / "m.json"),
        "--report",
        str(out / "r.json"),
    ]
    for item in FAST:
        args += ["--set", item]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    store = load_model_store(out / "model")
    assert store.provenance["params"]["cv"] == "group_kfold"  # what was run, not "auto"
    assert store.features == list(features.columns) and len(store.gene_names) == len(targets)
    metrics = json.loads((out / "m.json").read_text())
    assert set(metrics) == set(HEADLINE_KEYS)
    table = pd.read_csv(out / "plots" / "per_gene.csv")
    assert "family_cv_r2" in table.columns
    # a group missing in train_types is a one-line error naming the file
    types.assign(group=types["group"].where(types.index != types.index[3])).to_parquet(
        prepared / "train_types.parquet"
    )
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "train_types.parquet: no group for" in res.output


def test_null_on_cells_equals_the_reference_loop(small_cells):
    """Per-cell folds (hundreds of test rows each) take the null kernel's fold-sum path
    (one pass over each fold's rows, test error from its expansion): the same p-values and
    permutation counts as the one-permutation-at-a-time loop."""
    from benchmarks.bench_null import reference_permutation_null
    from ephys2expr.train.cv.nested import nested_cv
    from ephys2expr.train.cv.null import fold_designs, fold_sums_apply, permutation_null

    features, targets, types = small_cells
    X, Y = features.to_numpy(), targets.to_numpy().T
    # most real genes are far from null on these cells: add 40 of them with their cells
    # shuffled (real values, no relation left) so that genes stop at many points
    rng = np.random.default_rng(0)
    shuffled = np.stack([rng.permutation(Y[:, j]) for j in range(40)], axis=1)
    Y = np.ascontiguousarray(np.hstack([Y, shuffled]))
    groups = types["group"].to_numpy()
    settings = TrainSettings.from_params(
        ROOT / "params.yaml", ["n_alphas=8", "n_permutations=60", "null_stop_after=4"]
    )
    folds = outer_folds(len(X), "group_kfold", 5, cell_groups=groups)
    cv = nested_cv(X, Y, folds, settings, verbose=False, groups=groups)
    r2, _ = pooled_scores(Y, cv.oof_linear)  # the null tests the linear fits
    assert fold_designs(X, folds, cv.fold_alpha, settings)["sums_x"].shape[0] == len(X)
    assert not fold_sums_apply(outer_folds(len(X), "loo"), *X.shape)  # 1 test row a fold
    old = reference_permutation_null(X, Y, folds, cv.fold_alpha, r2, settings, None, 4)
    new = permutation_null(X, Y, folds, cv.fold_alpha, r2, settings, None, 4, verbose=False)
    # the comparison means something only if genes stopped at different points
    assert len(np.unique(old.n_permutations)) > 3 and old.n_permutations.max() == 60
    assert (old.p_value < 0.05).sum() > 10  # and if some genes are far from null
    np.testing.assert_array_equal(new.p_value, old.p_value)
    np.testing.assert_array_equal(new.n_permutations, old.n_permutations)
