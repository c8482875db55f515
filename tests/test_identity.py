"""Cell identity from ephys and expression through it, on the real Scala 2021 cells: the
classifier beats the majority class in grouped CV, rare classes are handled explicitly, the
mixture is the hand-computed sum, and ``best`` chooses by the inner CV only."""

from __future__ import annotations

import numpy as np
import pytest

from ephys2expr.identity.classifier import IdentityClassifier
from ephys2expr.identity.mixture import class_means, mixture_predict
from ephys2expr.identity.scores import expected_calibration_error
from ephys2expr.prepare.per_cell import paired_training_tables, read_paired_source
from ephys2expr.prepare.settings import PrepareSettings
from ephys2expr.train.cv.folds import outer_folds
from ephys2expr.train.evaluate import train_and_evaluate
from ephys2expr.train.identity.classifier_cv import identity_levels
from ephys2expr.train.identity.mixture import KINDS, mixture_cv
from tests.helpers import predict_table
from tests.train_data import train_settings


@pytest.fixture(scope="module")
def scala(raw_dir):
    """All Scala cells (features, types) and 40 of their most variable genes."""
    settings = PrepareSettings()
    f, t, types, _ = paired_training_tables(
        read_paired_source("scala2021", settings, raw_dir), settings, "scala2021"
    )
    genes = t.var(axis=1).sort_values().index[-40:]
    return f.astype(float), t.loc[genes].astype(float), types.loc[f.index]


@pytest.fixture(scope="module")
def folds(scala):
    f, _, types = scala
    groups = types["group"].astype(str).to_numpy()
    return outer_folds(len(f), "group_kfold", 5, None, 0, groups), groups


@pytest.fixture(scope="module")
def levels(scala, folds):
    """Family and type classifiers' nested grouped CV (they do not depend on expression)."""
    f, _, types = scala
    outer, groups = folds
    return identity_levels(f.to_numpy(), types, outer, train_settings(), groups)


def test_family_classifier_beats_the_majority_class_in_grouped_cv(scala, folds, levels):
    f, _, types = scala
    outer, _ = folds
    res = levels["family"]
    rep = res.report(outer)
    majority = rep["by_kind"]["majority"]
    assert rep["beats_majority"]
    assert rep["accuracy"] > majority["accuracy"] + 0.5  # 0.84 against 0.24
    assert rep["balanced_accuracy"] > 0.5 > majority["balanced_accuracy"]
    assert rep["log_loss"] < majority["log_loss"] - 1.0
    assert rep["ece"] <= 0.05
    assert res.final.kind_ == "logreg"
    # probabilities over the full class list, every row summing to 1
    assert res.oof.shape == (len(f), types["family"].nunique())
    np.testing.assert_allclose(res.oof.sum(axis=1), 1.0)


def test_a_class_absent_from_training_gets_probability_zero_in_its_own_column(scala, folds):
    f, _, types = scala
    outer, groups = folds
    X, fam = f.to_numpy(), types["family"].astype(str).to_numpy()
    classes = np.unique(fam)
    rare = "NP"  # 5 cells
    keep = fam != rare
    inner = outer_folds(int(keep.sum()), "group_kfold", 5, None, 0, groups[keep])
    clf = IdentityClassifier(classes).fit(X[keep], fam[keep], inner)
    proba = clf.predict_proba(X[~keep])
    col = list(classes).index(rare)
    assert proba.shape == (int((~keep).sum()), len(classes))
    assert np.all(proba[:, col] == 0.0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    for kind in ("logreg", "knn", "majority"):
        assert np.all(clf.predict_proba(X[:20], kind)[:, col] == 0.0)
    assert rare not in set(clf.predict(X))


def test_mixture_is_the_hand_computed_sum_for_two_cells(scala):
    f, t, types = scala
    fam = types["family"].astype(str).to_numpy()
    classes = np.unique(fam)
    y = np.searchsorted(classes, fam)
    Y = t.T.to_numpy()
    means = class_means(Y[10:], y[10:], len(classes))
    proba = np.random.default_rng(0).dirichlet(np.ones(len(classes)), size=2)
    got = mixture_predict(proba, means)
    for cell in range(2):
        for g in (0, 17, 39):
            by_hand = sum(
                proba[cell, c] * Y[10:][y[10:] == c, g].mean()
                for c in range(len(classes))
                if (y[10:] == c).any()
            )
            assert got[cell, g] == pytest.approx(by_hand, rel=1e-12)


def test_best_chooses_by_the_inner_cv_only(scala, folds, levels):
    """Changing the held-out cells' expression of fold 0 changes fold 0's out-of-fold scores
    but not which kind fold 0 chose for any gene."""
    f, t, types = scala
    outer, groups = folds
    settings = train_settings(model="best", n_permutations=0)

    def run(targets):
        res = train_and_evaluate(f, targets, types, settings)
        final = res.final
        mse = final.cv_mse_[np.arange(len(final.alpha_index_)), final.alpha_index_]
        Y = targets[list(f.index)].T.to_numpy()
        return mixture_cv(
            Y, res.oof.to_numpy().T, res.inner_mse, mse, levels, outer, settings, groups
        )

    a = run(t)
    te = outer[0][1]
    shuffled = t.copy()
    cols = shuffled.columns[te]
    shuffled[cols] = shuffled[cols].to_numpy()[:, np.random.default_rng(1).permutation(len(te))]
    b = run(shuffled)
    np.testing.assert_array_equal(a.fold_choice["best"][0], b.fold_choice["best"][0])
    assert set(np.unique(a.fold_choice["best"])) <= set(range(len(KINDS)))
    # the mixtures win genes on these cells (marker-like, variable genes)
    assert (a.final_choice["best"] != 0).sum() > 0


def test_ece_is_zero_for_calibrated_and_large_for_overconfident_probabilities():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.5, 1.0, 20000)
    hit = rng.uniform(size=p.size) < p
    proba = np.column_stack([p, 1 - p])
    y = np.where(hit, 0, 1)
    assert expected_calibration_error(proba, y) < 0.01
    over = np.column_stack([np.full(p.size, 0.99), np.full(p.size, 0.01)])
    assert expected_calibration_error(over, y) > 0.2


@pytest.fixture(scope="module")
def trained(scala, tmp_path_factory):
    """The train stage's work on the real cells and 40 genes, two feature sets, saved."""
    from ephys2expr.model.store import save_model_store
    from ephys2expr.train.run import train_from_prepared

    f, t, types = scala
    folder = tmp_path_factory.mktemp("identity")
    prepared = folder / "prepared"
    prepared.mkdir()
    f.to_parquet(prepared / "train_features.parquet")
    t.to_parquet(prepared / "train_targets.parquet")
    types.to_parquet(prepared / "train_types.parquet")
    settings = train_settings(
        model="best", n_permutations=20, feature_sets={"full": [], "no_tau_cap": ["tau", "cap"]}
    )
    out = train_from_prepared(prepared, settings, source="scala2021")
    save_model_store(out.store, folder / "model")
    return out, folder / "model"


def test_the_store_round_trips_the_identity_part_without_pickle(scala, trained):
    from ephys2expr.identity.classifier import proba_from_model
    from ephys2expr.model.store import load_model_store

    out, model_dir = trained
    f, _, _ = scala
    assert {"identity.parquet", "class_means.parquet"} <= {p.name for p in model_dir.iterdir()}
    for path in model_dir.iterdir():  # Parquet and JSON only: no pickle protocol header
        data = path.read_bytes()
        assert path.suffix in (".parquet", ".json")
        assert b"\x80\x04\x95" not in data and b"\x80\x05\x95" not in data, path.name
    store = load_model_store(model_dir)
    assert set(store.identity.classifiers) == {"full", "no_tau_cap"}
    # each feature set has its own classifier, on its own features
    assert store.identity.classifiers["no_tau_cap"]["family"].coef.shape[1] == 9
    X = f.iloc[:50]
    # to rounding: loaded coefficients may sit in another memory order than the fitted ones,
    # and BLAS kernels (CPU-dependent) then sum in another order (seen: 1.8e-15)
    np.testing.assert_allclose(
        store.primary.predict(X), out.store.primary.predict(X), rtol=0, atol=1e-12
    )
    sub = store.model("no_tau_cap")
    np.testing.assert_allclose(  # to rounding: the set's coefficients are re-ordered on load
        sub.predict(X[sub.features]),
        out.store.model("no_tau_cap").predict(X[sub.features]),
        atol=1e-12,
    )
    probas = store.primary.identity_probabilities(X)
    clf = out.identity["full"].levels["family"].final
    np.testing.assert_allclose(
        probas["family"].to_numpy(), clf.predict_proba(X.to_numpy()), atol=1e-12
    )
    np.testing.assert_allclose(
        proba_from_model(clf.models_[clf.kind_], clf.mean_, clf.scale_, X.to_numpy()),
        probas["family"].to_numpy(),
        atol=1e-12,
    )
    assert list(probas["type"].columns) == sorted(scala[2]["type"].astype(str).unique())
    # best in X: a gene whose kind is a mixture is the class-mean sum, not the linear model
    kinds = store.primary.genes["model_kind"]
    assert {"lasso"} < set(kinds)
    g = int(np.flatnonzero(kinds.to_numpy() == "type")[0])
    means = store.identity.means["type"].to_numpy()[:, g]
    np.testing.assert_allclose(store.primary.predict(X)[:, g], probas["type"].to_numpy() @ means)
    report = out.report
    assert report["identity"]["family"]["accuracy"] > 0.8
    # the family accuracy is a headline number of every per-cell source
    assert out.metrics["fam_acc"] == round(report["identity"]["family"]["accuracy"], 4)


@pytest.fixture(scope="module")
def allen_cells(raw_dir):
    from ephys2expr.readers.allen import read_allen_cells

    cells, _ = read_allen_cells(raw_dir / "aibs" / "aibs_aggregated_ephys_v6.csv")
    return cells


def test_a_user_table_predicted_through_the_cli_gets_the_identity_columns(
    tmp_path, trained, allen_cells
):
    import anndata as ad

    from ephys2expr.model.store import load_model_store

    _, model_dir = trained
    store = load_model_store(model_dir)
    sub = store.model("no_tau_cap")
    cells = allen_cells[allen_cells["cre_line"].str.startswith("Pvalb")]
    cells = cells.dropna(subset=sub.features).iloc[:40]
    cells = cells.drop(columns=["tau", "cap"])  # these cells get the no_tau_cap set's classifier
    res, out = predict_table(tmp_path, model_dir, cells)
    assert res.exit_code == 0, res.output
    adata = ad.read_h5ad(out)
    obs = adata.obs
    assert {"family", "family_probability", "type", "type_probability"} <= set(obs.columns)
    assert set(adata.obsm) >= {"family_proba", "type_proba"}
    fam = adata.obsm["family_proba"]
    assert list(fam.columns) == store.identity.classifiers["full"]["family"].classes
    np.testing.assert_allclose(fam.sum(axis=1), 1.0, rtol=1e-5)
    assert (obs["family"].astype(str) == fam.idxmax(axis=1)).all()
    np.testing.assert_allclose(obs["family_probability"], fam.max(axis=1), rtol=1e-6)
    assert len(obs) == 40 and (obs["feature_set"].astype(str) == "no_tau_cap").all()
    expected = sub.identity_probabilities(cells[sub.features])["family"]
    np.testing.assert_allclose(fam.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=1e-6)
    # X holds the best expression: the store's own predictions of the set
    got = adata[:, list(store.gene_names)[:5]].X
    np.testing.assert_allclose(got, sub.predict(cells[sub.features])[:, :5], rtol=1e-4, atol=1e-4)


def test_a_table_without_tau_cap_and_sag_is_predicted_whole_by_the_per_cell_store(
    tmp_path, trained, allen_cells
):
    """Issue #21: a CSV lacking tau, cap and sag through the CLI - the per-cell store has no
    such set, so it is fitted on demand (with its own identity classifier) and every cell is
    predicted from its 8 features, with identity columns."""
    import anndata as ad

    _, model_dir = trained
    kept = ["rin", "rmp", "apthr", "apamp", "aphw", "ahpamp", "rheo", "maxfreq"]
    cells = allen_cells.dropna(subset=kept).iloc[:30][kept]
    res, out = predict_table(
        tmp_path,
        model_dir,
        cells,
        "--set",
        "on_demand_null=0",
        "--set",
        f"cache_dir={tmp_path / 'cache'}",
    )
    assert res.exit_code == 0, res.output
    adata = ad.read_h5ad(out)
    assert list(adata.obs_names) == [str(i) for i in cells.index]
    assert set(adata.obs["feature_set"].astype(str)) == {"no_tau_cap_sag"}
    assert set(adata.obs["features_used"].astype(str)) == {",".join(kept)}
    assert np.isfinite(adata.X).all()
    fam = adata.obsm["family_proba"]
    np.testing.assert_allclose(fam.sum(axis=1), 1.0, rtol=1e-5)
    assert (adata.obs["family"].astype(str) == fam.idxmax(axis=1)).all()


def test_allen_pvalb_cells_are_predicted_pvalb(trained, allen_cells):
    from ephys2expr.validate.identity import allen_families, family_agreement

    out, _ = trained
    fams = allen_families(out.store, allen_cells)
    table, summary = family_agreement(fams)
    assert summary["by_cre_group"]["Pvalb"] > 0.8
    assert table.loc[("Pvalb-IRES-Cre", "aspiny"), "family_agreement"] > 0.8
    assert 0 <= summary["class_agreement"] <= 1 and summary["n_cells"] == len(fams)


def test_a_training_part_of_one_class_predicts_that_class(scala):
    """Tiny sources (the template: 3 animals) can leave one class in a fold's training part:
    every kind then gives it probability 1, none fails."""
    f, _, types = scala
    fam = types["family"].astype(str).to_numpy()
    classes = np.unique(fam)
    pv = np.flatnonzero(fam == "Pvalb")[:30]
    X = f.to_numpy()[pv]
    folds = [(np.arange(15), np.arange(15, 30)), (np.arange(15, 30), np.arange(15))]
    clf = IdentityClassifier(classes).fit(X, fam[pv], folds)
    col = list(classes).index("Pvalb")
    for kind in ("logreg", "knn", "majority"):
        np.testing.assert_allclose(clf.predict_proba(f.to_numpy()[:5], kind)[:, col], 1.0)
