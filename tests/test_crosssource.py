"""The cross-source comparison (type-mean vs per-cell model on the same cells), on real data:
Scala 2021 cells (a subset of animals), the 20-type table and the Cadwell 2016 cells."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from ephys2expr import paths
from ephys2expr.errors import InputError
from ephys2expr.features import CADWELL_FEATURES
from ephys2expr.model.store import join_feature_sets, store_from_estimator
from ephys2expr.prepare.per_cell import paired_training_tables, read_paired_source
from ephys2expr.prepare.run import load_training_set, select_features
from ephys2expr.prepare.settings import PrepareSettings
from ephys2expr.readers.cadwell import read_cadwell
from ephys2expr.train.settings import TrainSettings
from ephys2expr.validate.patchseq import cross_source as cs
from ephys2expr.validate.settings import ValidateSettings


@pytest.fixture(scope="module")
def scala(raw_dir):
    """Scala cells of 80 animals (about a third), their 11 features, targets and types."""
    settings = PrepareSettings()
    f, t, types, _ = paired_training_tables(
        read_paired_source("scala2021", settings, raw_dir), settings, "scala2021"
    )
    animals = types["group"].drop_duplicates().sort_values().iloc[::3]
    keep = types.index[types["group"].isin(animals)]
    return f.loc[keep], t[keep], types.loc[keep]


@pytest.fixture(scope="module")
def type_mean(raw_dir, scala):
    """The 20-type table on 300 of the Scala genes and the markers (fast)."""
    training = load_training_set("rds", None, raw_dir)
    f = select_features(training, PrepareSettings().features, "test")
    shared = training.targets.index.intersection(scala[1].index)
    genes = shared[:300].union(shared.intersection(list(cs.LABEL_MARKERS.values())))
    return f, training.targets.loc[genes, f.index], training.types.loc[f.index]


@pytest.fixture(scope="module")
def cadwell(raw_dir):
    files = (paths.CADWELL_EXPR, paths.CADWELL_META, paths.CADWELL_EPHYS, paths.CADWELL_SDRF)
    return read_cadwell(*(paths.in_raw_dir(raw_dir, p) for p in files))


def test_label_markers_come_from_the_taxonomy_lists():
    assert cs.LABEL_MARKERS == {
        "Inh": "Gad1",
        "Exc": "Slc17a7",
        "Pvalb": "Pvalb",
        "Sst": "Sst",
        "Vip": "Vip",
        "Lamp5": "Lamp5",
    }
    assert cs.CADWELL_MARKER == "Lamp5"


def test_measured_markers_separate_scala_labels_and_compare_models_scores(scala):
    _, targets, types = scala
    measured = targets.T
    labels = cs.scala_labels(types)
    assert labels.sum().to_dict() == {
        "Inh": (types["broad_type"] == "Inh").sum(),
        "Exc": (types["broad_type"] == "Exc").sum(),
        **{f: (types["family"] == f).sum() for f in ("Pvalb", "Sst", "Vip", "Lamp5")},
    }
    auc = cs.marker_auc(measured, labels, cs.LABEL_MARKERS)
    assert auc["Pvalb"] == roc_auc_score(labels["Pvalb"], measured["Pvalb"])
    # the measured markers are what the labels were called from: near-perfect
    assert min(auc.values()) > 0.85 and auc["Inh"] > 0.95, auc

    rng = np.random.default_rng(0)
    genes = measured.columns[:200]
    shuffled = pd.DataFrame(
        rng.permutation(measured[genes].to_numpy()), index=measured.index, columns=genes
    )
    constant = pd.DataFrame(1.0, index=measured.index, columns=genes)
    per_gene, summary = cs.compare_models(
        {"perfect": measured[genes], "shuffled": shuffled, "constant": constant},
        measured,
        labels,
        cs.LABEL_MARKERS,
        r_threshold=0.3,
    )
    assert list(summary.index) == ["perfect", "shuffled", "constant", cs.MEASURED]
    assert summary.loc["perfect", "median_r"] == pytest.approx(1.0)
    assert summary.loc["perfect", "frac_r_above"] == 1.0
    assert abs(summary.loc["shuffled", "median_r"]) < 0.05
    assert summary.loc["shuffled", "frac_r_above"] < 0.02
    # a constant prediction: r counted as 0, AUC 0.5, every gene constant
    assert (per_gene["constant"] == 0).all()
    assert summary.loc["constant", "n_genes_constant"] == len(per_gene)
    assert summary.loc["constant", "auc_mean"] == pytest.approx(0.5)
    # only genes that vary in the measured cells are compared
    assert (measured[per_gene.index].std() > 0).all()


def test_cadwell_supports_only_the_engc_label(cadwell):
    labels = cs.cadwell_labels(cadwell.meta)
    assert list(labels.columns) == ["eNGC"]
    assert labels["eNGC"].sum() == 23 and (~labels["eNGC"]).sum() == 25
    auc = cs.marker_auc(cadwell.expr, labels, cs.LABEL_MARKERS)  # no Exc, no other labels
    assert auc == {}


def _fit(features, targets, cols, settings):
    """The train settings' estimator on ``cols`` (what the train stage's final fit is)."""
    X, Y = features[cols].to_numpy(dtype=float), targets[features.index].to_numpy(dtype=float).T
    return settings.estimator(n_rows=len(X)).fit(X, Y)


def test_cross_source_on_real_subsets(scala, type_mean, cadwell):
    pf, pt, ptypes = scala
    settings = TrainSettings(alpha=0.05)
    # stand-in for the train stage's out-of-fold predictions: a fit on the other animals
    animals = ptypes["group"].to_numpy()
    held = np.isin(animals, np.unique(animals)[::2])
    fit = _fit(pf[~held], pt[pf.index[~held]], list(pf.columns), settings)
    oof = pd.DataFrame(fit.predict(pf[held].to_numpy()).T, index=pt.index, columns=pf.index[held])
    ps_cells = cadwell.features.index[cadwell.features[CADWELL_FEATURES].notna().all(axis=1)]
    tf, tt, _ = type_mean
    shared = [f for f in tf.columns if f in pf.columns]
    prov = {"params": settings.as_dict()}
    type_store = _store(
        {"full": list(tf.columns), "no_adratio": shared, "cadwell": CADWELL_FEATURES},
        tf,
        tt,
        settings,
        prov,
    )
    cad_tm = type_store.model("cadwell").predict(cadwell.features.loc[ps_cells])
    cad_tm = pd.DataFrame(cad_tm, index=ps_cells, columns=tt.index)
    paired_store = _store(
        {"full": list(pf.columns), "cadwell": CADWELL_FEATURES}, pf, pt, settings, prov
    )
    res = cs.validate_cross_source(
        type_mean, type_store, cadwell, cad_tm, scala, paired_store, oof, 0.3
    )
    notes = res.summary["notes"]
    assert notes["cadwell_per_cell_model"] == "stored feature set 'cadwell'"
    assert notes["scala_type_mean_model"] == "stored feature set 'no_adratio'"
    # a store without the set a comparison needs is a one-line error naming the setting
    with pytest.raises(InputError, match=r"no feature set of exactly .*train.feature_sets"):
        cs.validate_cross_source(
            type_mean,
            _store({"full": list(tf.columns)}, tf, tt, settings, prov),
            cadwell,
            cad_tm,
            scala,
            paired_store,
            oof,
            0.3,
        )
    t = res.table.set_index(["cell_set", "model"])
    assert set(t.index) == {
        (c, m) for c in ("scala2021", "cadwell2016") for m in ("type_mean", "per_cell", "measured")
    }
    assert t.loc[("scala2021", "per_cell"), "n_cells"] == held.sum()  # held-out cells only
    assert t.loc[("cadwell2016", "per_cell"), "n_cells"] == 45
    assert res.summary["notes"]["scala_type_mean_features"] == shared
    assert pd.isna(t.loc[("cadwell2016", "per_cell"), "auc_Pvalb"])  # not a Cadwell label
    assert not pd.isna(t.loc[("cadwell2016", "per_cell"), "auc_eNGC"])
    # the per-cell model tells Pvalb cells apart in unseen animals
    assert t.loc[("scala2021", "per_cell"), "auc_Pvalb"] > 0.8
    assert t.loc[("scala2021", "measured"), "auc_Pvalb"] > 0.9
    genes = res.per_gene[res.per_gene["cell_set"] == "scala2021"]
    assert len(genes) == t.loc[("scala2021", "per_cell"), "n_genes"] <= 306
    assert genes["per_cell"].median() == pytest.approx(t.loc[("scala2021", "per_cell"), "median_r"])


def _store(sets: dict, features, targets, settings, provenance):
    """A model store with one model per set of ``features`` columns (first = all), each in
    the store's column order."""
    sets = {name: [f for f in features.columns if f in cols] for name, cols in sets.items()}
    models = [
        store_from_estimator(
            _fit(features, targets, cols, settings),
            features[cols],
            targets.index,
            provenance=provenance,
            feature_set=name,
        )
        for name, cols in sets.items()
    ]
    return join_feature_sets(models)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("cross_r_threshold=1.5", "validate.cross_r_threshold: 1.5 is not in [-1, 1)"),
        ("cross_r_threshold=x", "validate.cross_r_threshold: 'x' is not a number"),
    ],
)
def test_cross_r_threshold_setting(override, message):
    assert ValidateSettings.from_params(None).cross_r_threshold == 0.3
    with pytest.raises(InputError, match=re.escape(message)):
        ValidateSettings.from_params(None, [override])


def test_stage_paired_dirs_go_together(tmp_path):
    from stages.validate import app

    res = CliRunner().invoke(
        app,
        [
            "--model-dir",
            str(tmp_path),
            "--paired-model-dir",
            str(tmp_path),
            "--metrics",
            str(tmp_path / "m.json"),
        ],
    )
    assert res.exit_code == 2
    assert "--paired-prepared-dir and --paired-train-dir go together" in res.output
    assert not (tmp_path / "m.json").exists()
