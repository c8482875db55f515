"""Nested CV, baselines and the permutation null on real data, against scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import LeaveOneOut, cross_val_predict

from ephys2expr.errors import InputError
from ephys2expr.model.store import EXPRESSION_RANGE
from ephys2expr.train.cv.baselines import baseline_predictions
from ephys2expr.train.cv.folds import outer_folds, pooled_scores
from ephys2expr.train.cv.nested import nested_cv
from ephys2expr.train.cv.null import bh_qvalues, permutation_null
from ephys2expr.train.evaluate import train_and_evaluate
from ephys2expr.train.settings import TrainSettings
from tests.train_data import small_real_inputs, train_settings

PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"


@pytest.fixture(scope="module")
def real(raw_dir):
    return small_real_inputs(raw_dir)


def test_outer_folds_schemes():
    loo = outer_folds(20, "loo")
    assert len(loo) == 20 and all(len(te) == 1 for _, te in loo)
    kf = outer_folds(20, "kfold", n_folds=4, seed=1)
    assert sorted(np.concatenate([te for _, te in kf])) == list(range(20))
    assert [list(te) for _, te in kf] == [list(te) for _, te in outer_folds(20, "kfold", 4, seed=1)]
    groups = np.array(["Exc"] * 8 + ["Inh"] * 12)
    grp = outer_folds(20, "group", groups=groups)
    assert len(grp) == 2 and all(len(set(groups[te])) == 1 for _, te in grp)
    with pytest.raises(InputError, match="train.cv"):
        outer_folds(20, "bootstrap")


def test_baselines_match_sklearn(real):
    features, targets, types = real
    X = features.to_numpy()
    Y = targets.to_numpy().T
    folds = outer_folds(len(X), "loo")
    base = baseline_predictions(X, Y, folds, classes=types["broad_type"].to_numpy())
    for g in (0, 3, 40, 120):
        ols = cross_val_predict(LinearRegression(), X, Y[:, g], cv=LeaveOneOut())
        # clipped to the possible log2 expressions, like the model's predictions
        np.testing.assert_allclose(base["ols"][:, g], np.clip(ols, *EXPRESSION_RANGE), atol=1e-8)
        mean = cross_val_predict(DummyRegressor(), X, Y[:, g], cv=LeaveOneOut())
        np.testing.assert_allclose(base["mean"][:, g], mean, atol=1e-12)
    # class baseline: mean of the other types of the same broad type
    cls = types["broad_type"].to_numpy()
    i = 4
    same = [j for j in range(len(X)) if j != i and cls[j] == cls[i]]
    np.testing.assert_allclose(base["class"][i], Y[same].mean(axis=0))


def test_nested_cv_never_sees_the_held_out_type(real):
    features, targets, _ = real
    X = features.to_numpy()
    Y = targets.to_numpy().T[:, :60]
    settings = train_settings(n_alphas=8, inner_folds=4)
    folds = outer_folds(len(X), "loo")
    cv = nested_cv(X, Y, folds, settings)
    # corrupt the held-out type's expression: its own prediction must not change
    Y2 = Y.copy()
    Y2[7] += 100.0
    cv2 = nested_cv(X, Y2, folds[7:8], settings)
    np.testing.assert_allclose(cv2.oof[7], cv.oof[7], atol=1e-10)
    # and equals a fit on the other 19 types alone (scaling and alpha choice included)
    tr = folds[7][0]
    alone = settings.estimator().fit(X[tr], Y[tr])
    np.testing.assert_allclose(alone.predict(X[7:8])[0], cv.oof[7], atol=1e-10)


def test_pooled_scores_and_bh():
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(20, 3))
    pred = Y + rng.normal(scale=0.5, size=Y.shape)
    r2, rmse = pooled_scores(Y, pred)
    from sklearn.metrics import mean_squared_error, r2_score

    np.testing.assert_allclose(r2, [r2_score(Y[:, g], pred[:, g]) for g in range(3)])
    np.testing.assert_allclose(
        rmse, [mean_squared_error(Y[:, g], pred[:, g]) ** 0.5 for g in range(3)]
    )
    p = np.array([0.001, 0.01, 0.02, 0.5, 0.04])
    # BH by hand: sorted p * m / rank, made monotone from the top
    order = np.argsort(p)
    adj = np.minimum.accumulate((p[order] * len(p) / np.arange(1, 6))[::-1])[::-1]
    expected = np.empty(5)
    expected[order] = adj
    np.testing.assert_allclose(bh_qvalues(p), expected)


def test_permutation_null_separates_signal_from_noise(real):
    features, targets, _ = real
    X = features.to_numpy()
    rng = np.random.default_rng(5)
    Xs = (X - X.mean(0)) / X.std(0)
    signal = Xs[:, [0, 8]] @ [1.5, -1.0] + rng.normal(scale=0.3, size=(20, 1)).ravel()
    noise = rng.normal(size=20)
    flat = np.zeros(20)
    flat[3] = 0.01  # nearly constant: the penalty zeroes it at every alpha
    Y = np.c_[signal, noise, flat]
    settings = train_settings(n_alphas=10, n_permutations=30)
    folds = outer_folds(20, "loo")
    cv = nested_cv(X, Y, folds, settings)
    r2, _ = pooled_scores(Y, cv.oof_linear)  # the null tests the linear fits
    null = permutation_null(X, Y, folds, cv.fold_alpha, r2, settings, stop_after=5)
    assert null.p_value[0] == pytest.approx(1 / 31)
    assert null.n_permutations[0] == 30
    assert null.p_value[1] > 0.1
    assert null.p_value[2] == 1.0  # identical mean-only predictions under every permutation
    assert null.n_permutations[2] == 5  # stopped early (sequential p-value)


def test_train_and_evaluate_on_real_genes(real):
    features, targets, types = real
    settings = train_settings(n_alphas=10, n_permutations=5)
    res = train_and_evaluate(features, targets, types, settings)
    pg = res.per_gene
    assert list(pg.index) == list(targets.index)
    for b in ("mean", "ols", "class"):
        np.testing.assert_array_equal(pg[f"beats_{b}"], pg["cv_r2"] > pg[f"{b}_cv_r2"])
        assert res.report["genes_beating"][b] == int(pg[f"beats_{b}"].sum())
    # all-zero genes predict the training mean: identical to the mean baseline
    zero = pg["fold_alpha_median"] == settings.alphas[0]
    assert zero.any()
    # the markers are predictable from ephys (Pvalb is the textbook case)
    assert pg.at["Pvalb", "cv_r2"] > 0.5 and pg.at["Pvalb", "beats_ols"]
    # honest: out-of-fold r2 never exceeds the training r2 of the final fit on average
    assert pg["cv_r2"].median() < pg["train_r2"].median()
    assert set(res.report) >= {"model", "baselines", "genes_beating", "null"}
    assert set(res.seconds) >= {"nested_cv", "baselines", "final_fit", "permutation_null"}
    assert res.oof.shape == targets.shape
    # the reported r2 is that of what is written: predictions clipped at 0 (log2(x + 1))
    X, Y = features.to_numpy(), targets.to_numpy().T
    cv = nested_cv(X, Y, outer_folds(20, "loo"), settings)
    assert (cv.oof_linear < 0).any() and (res.oof.to_numpy() >= 0).all()
    np.testing.assert_array_equal(cv.oof, np.clip(cv.oof_linear, *EXPRESSION_RANGE))
    np.testing.assert_allclose(pg["cv_r2"], pooled_scores(Y, cv.oof)[0], rtol=0, atol=1e-12)


def test_sample_weights_change_the_fit(real):
    features, targets, types = real
    X, Y = features.to_numpy(), targets.to_numpy().T[:, :30]
    folds = outer_folds(20, "loo")
    a = nested_cv(X, Y, folds, train_settings(alpha=0.05))
    b = nested_cv(X, Y, folds, train_settings(alpha=0.05), weights=types["weight"].to_numpy())
    assert not np.allclose(a.oof, b.oof)


def test_settings_reject_bad_params():
    with pytest.raises(InputError, match="train.alpha"):
        train_settings(alpha="big")
    with pytest.raises(InputError, match="train.penalty"):
        train_settings(penalty="lars")
    with pytest.raises(InputError, match="alpha_min"):
        train_settings(alpha_min=20.0, alpha_max=10.0)
    assert train_settings(alpha="0.05").alpha == 0.05


def test_settings_name_the_params_key_of_a_bad_value():
    for key, bad in [
        ("l1_ratio", 0),
        ("n_alphas", 0),
        ("alpha_max", -1),
        ("inner_folds", 1),
        ("n_folds", 1),
        ("cv", "bootstrap"),
        ("sample_weight", "genes"),
        ("n_permutations", -1),
        ("null_stop_after", -2),
        ("fdr_q", 1.5),
        ("seed", "x"),
    ]:
        values = {"penalty": "elasticnet"} if key == "l1_ratio" else {}
        with pytest.raises(InputError, match=f"params.yaml train.{key}"):
            train_settings(**values, **{key: bad})
    with pytest.raises(InputError, match="params.yaml train.lambda: unknown setting"):
        train_settings(**{"lambda": 1.0})


def test_settings_from_params_yaml_and_overrides(tmp_path):
    from ephys2expr.executor import ExecutorSettings
    from ephys2expr.settings import build_settings

    params = tmp_path / "params.yaml"
    params.write_text("train:\n  alpha: 0.05\n  cv: kfold\nexecutor:\n  gene_chunk: 100\n")
    settings, executor = build_settings(
        params, ["n_folds=4", "executor.kind=local"], TrainSettings, ExecutorSettings
    )
    assert (settings.alpha, settings.cv, settings.n_folds) == (0.05, "kfold", 4)
    assert settings.penalty == "lasso" and settings.n_permutations == 1000  # the defaults
    assert (executor.kind, executor.gene_chunk) == ("local", 100)
    # the provenance stored in model.json: the 17 keys of params.yaml's train section
    assert list(settings.as_dict()) == [
        "model",
        "penalty",
        "l1_ratio",
        "alpha",
        "n_alphas",
        "alpha_min",
        "alpha_max",
        "inner_folds",
        "cv",
        "n_folds",
        "seed",
        "sample_weight",
        "n_permutations",
        "null_stop_after",
        "fdr_q",
        "feature_sets",
        "min_set_cells",
    ]
    assert set(settings.as_dict()) == set(yaml.safe_load(PARAMS.read_text())["train"])
    with pytest.raises(InputError, match="params.yaml train.penalty"):
        TrainSettings.from_params(params, ["penalty=lars"])
