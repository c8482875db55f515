"""Outputs that say what they are (#32, item 4): far cells keep their ranking and get wide
intervals, ``trusted`` asks only for baselines a user could run, a type is always inside
its family, and the store ships the identity classifier its CV chose (kNN too)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ephys2expr.identity.classifier import IdentityClassifier
from ephys2expr.model.ood import range_excess
from ephys2expr.model.path import inner_folds
from ephys2expr.model.store import (
    StoreIdentity,
    identity_from_tables,
    identity_tables,
    nest_types,
    store_from_estimator,
)
from ephys2expr.predict.intervals import interval_terms
from ephys2expr.predict.outputs.write import _block_and_bounds, predict_block, set_terms
from ephys2expr.predict.quality import set_quality
from ephys2expr.prepare.per_cell import paired_training_tables
from ephys2expr.prepare.settings import PrepareSettings
from ephys2expr.readers.scala import read_scala2021
from ephys2expr.train.cv.folds import outer_folds
from ephys2expr.train.evaluate import train_and_evaluate
from ephys2expr.train.identity.best import stored_classifier
from ephys2expr.train.identity.classifier_cv import identity_levels, nesting_report
from ephys2expr.train.settings import TrainSettings
from tests.helpers import with_primary
from tests.train_data import small_real_inputs


@pytest.fixture(scope="module")
def scala(raw_dir):
    """The real Scala cells (features, types): cells of another lab for a type-mean model."""
    settings = PrepareSettings()
    paired = read_scala2021(raw_dir, feature_names=settings.paired_features)
    features, _, types, _ = paired_training_tables(paired, settings, "scala2021")
    return features, types


@pytest.fixture(scope="module")
def type_mean(raw_dir):
    """A type-mean model as train@rds fits it (20 real types, leave-one-type-out CV, its
    intervals), on the features the Scala cells share with it, and a few dozen genes."""
    features, targets, types = small_real_inputs(raw_dir, n_variable=20, n_flat=5)
    cols = [c for c in features.columns if c != "adratio"]
    settings = TrainSettings.from_params({"train": {"n_alphas": 8, "n_permutations": 0}})
    res = train_and_evaluate(features[cols], targets, types, settings)
    store = store_from_estimator(
        res.final,
        features[cols],
        targets.index,
        res.per_gene,
        {"params": {}},
        intervals=res.intervals,
    )
    return store, res


def test_far_cells_keep_their_ranking(type_mean, scala):
    """The issue's case: foreign Patch-seq cells, almost all beyond the 20 types' range.
    Clipped at 0, the extrapolated Gad1 ranked Exc/Inh poorly; moved into the range it
    ranks them as well as the raw linear values do."""
    store, _ = type_mean
    features, types = scala
    X = features[store.features].to_numpy(dtype=float)
    inh = (types["broad_type"] == "Inh").to_numpy()
    assert (
        range_excess(X, store.primary.feature_min, store.primary.feature_max).max(axis=1).mean() > 0
    )
    genes = list(store.gene_names)
    terms = set_terms(store, np.arange(len(genes)), np.float64)
    cells = np.zeros(len(X), dtype=np.int64)
    clipped = predict_block(terms, X, cells, bound=False)  # the old output
    bounded = predict_block(terms, X, cells)
    np.testing.assert_allclose(bounded.T, store.primary.predict(X), rtol=1e-12, atol=1e-12)
    gad1 = genes.index("Gad1")
    auc_clipped = roc_auc_score(inh, clipped[gad1])
    auc_bounded = roc_auc_score(inh, bounded[gad1])
    assert (clipped[gad1] == 0).mean() > 0.4  # the ranking erased by the clip at 0
    assert auc_bounded > 0.85 and auc_bounded > auc_clipped + 0.1
    # a cell inside the range is predicted as before, bit for bit
    inside = store.train_features.to_numpy(dtype=float)[:5]
    np.testing.assert_array_equal(
        predict_block(terms, inside, cells[:5]), predict_block(terms, inside, cells[:5], False)
    )


def test_far_cells_get_intervals_that_widen_with_distance(type_mean, scala):
    store, _ = type_mean
    X = np.vstack(
        [
            store.train_features.to_numpy(dtype=float),  # in range
            scala[0][store.features].to_numpy(dtype=float),
        ]
    )
    gi = np.arange(len(store.gene_names))
    terms = (set_terms(store, gi, np.float64), interval_terms(store, gi, 0.9))
    _, (lower, upper) = _block_and_bounds(terms, X, np.zeros(len(X), dtype=np.int64))
    width = upper.astype(float) - lower.astype(float)  # genes x cells
    excess = range_excess(X, store.primary.feature_min, store.primary.feature_max).max(axis=1)
    far = excess > 0
    assert far.sum() > 1000 and (~far).sum() >= 20
    in_range_median = np.median(width[:, ~far], axis=1)
    assert (width[:, far] >= in_range_median[:, None] - 1e-2).all()  # done-when of #32
    # wider the farther: the far cells' mean width rises with their excess
    order = np.argsort(excess[far])
    mean_width = width[:, far].mean(axis=0)[order]
    third = len(order) // 3
    assert mean_width[-third:].mean() > mean_width[:third].mean()


def test_trusted_asks_for_user_baselines_not_the_oracle(type_mean):
    """Real per-gene CV results; q-values set as if every gene passed the null."""
    store, _ = type_mean
    genes = store.primary.genes.copy()
    genes["q_value"] = 0.01
    # a Gad1-like gene: beats mean and OLS, loses only to the true-class baseline
    genes.loc["Gad1", ["beats_mean", "beats_ols", "beats_class"]] = [True, True, False]
    quality = set_quality(with_primary(store, genes=genes), np.arange(len(genes)))
    assert "beats_class" not in quality and "beats_class_oracle" in quality
    np.testing.assert_array_equal(quality["beats_class_oracle"]["full"], genes["beats_class"])
    want = genes["beats_mean"] & genes["beats_ols"]
    np.testing.assert_array_equal(quality["trusted"]["full"], want)
    assert quality["trusted"].loc["Gad1", "full"]
    genes["q_value"] = 0.5  # not significant: never trusted
    quality = set_quality(with_primary(store, genes=genes), np.arange(len(genes)))
    assert not quality["trusted"].to_numpy().any()


@pytest.fixture(scope="module")
def levels(scala):
    """Nested CV of the family and type classifiers on the real Scala cells (5 outer folds
    by animal, as train@scala2021)."""
    features, types = scala
    settings = TrainSettings.from_params({"train": {"cv": "group_kfold"}})
    groups = types["group"].astype(str).to_numpy()
    folds = outer_folds(len(types), "group_kfold", 5, cell_groups=groups)
    return identity_levels(features.to_numpy(dtype=float), types, folds, settings, groups)


def test_type_is_always_inside_its_family(levels, scala):
    _, types = scala
    report = nesting_report(levels, types)
    assert report["frac_type_outside_family"] > 0.1  # the contradiction of before
    assert report["frac_type_outside_family_nested"] == 0
    assert report["family_accuracy"] >= 0.84  # the family classifier is untouched
    assert report["type_accuracy_nested"] >= report["type_accuracy"] - 0.02
    fam, typ = levels["family"], levels["type"]
    lookup = types.groupby("type")["family"].first()
    type_family = np.searchsorted(fam.classes, lookup.loc[typ.classes].to_numpy())
    nested, chosen = nest_types(fam.oof, typ.oof, type_family)
    # family probabilities are the sums of their types'
    sums = nested @ np.eye(len(fam.classes))[type_family]
    np.testing.assert_allclose(sums, fam.oof, atol=1e-12)
    assert (type_family[chosen] == fam.oof.argmax(axis=1)).all()


def test_a_knn_classifier_is_stored_and_loaded_without_pickle(scala):
    """The store ships the kNN the inner CV chose: its rows rebuilt from train_features,
    its labels from train_types, probabilities equal to the fitted classifier's."""
    features, types = scala
    rows = features.iloc[:300]
    X = rows.to_numpy(dtype=float)
    groups = types["group"].astype(str).to_numpy()[:300]
    labels = types["family"].iloc[:300].astype(str).to_numpy()
    clf = IdentityClassifier(np.unique(labels)).fit(X, labels, inner_folds(300, 3, 0, groups))
    clf.kind_, clf.param_ = "knn", clf.best_by_kind_["knn"]  # as if the inner CV chose it
    stored = stored_classifier(clf)
    assert stored.kind == "knn" and stored.coef.shape == (len(clf.classes_), X.shape[1])
    sets = {"full": list(features.columns)}
    means = {
        "family": pd.DataFrame(0.0, index=stored.classes, columns=["g"]),
        "type": pd.DataFrame(0.0, index=["t"], columns=["g"]),
    }
    meta, table, class_means = identity_tables(
        StoreIdentity({"full": {"family": stored}}, means), sets, ["g"]
    )
    assert meta["full"]["family"]["kind"] == "knn"
    loaded = identity_from_tables(meta, table, class_means, sets, ["g"], rows, types.iloc[:300])
    again = loaded.classifiers["full"]["family"]
    np.testing.assert_array_equal(again.rows, clf.models_["knn"]["X"])
    other = features.iloc[300:700].to_numpy(dtype=float)
    np.testing.assert_array_equal(again.proba(other), clf.predict_proba(other))
    with pytest.raises(Exception, match="knn family classifier needs"):
        identity_from_tables(meta, table, class_means, sets, ["g"], None, None)
