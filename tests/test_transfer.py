"""Cells from other labs (issue #30), on the real data: batch alignment recovers a known
shift of held-out Scala cells, a one-class batch stays one class, a known class restricts
identity, the predict report and the h5ad carry the fitted shift, and an ipfx table of the
human L1 study is read end to end."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from ephys2expr.errors import InputError
from ephys2expr.identity.align import (
    EXC_FAMILIES,
    ClassGaussians,
    allowed_families,
    fit_alignment,
)
from ephys2expr.identity.temper import TEMPER_SLOPE
from ephys2expr.prepare.per_cell import paired_training_tables, read_paired_source
from ephys2expr.prepare.settings import PrepareSettings
from ephys2expr.readers.ipfx import ipfx_cells, is_ipfx_table
from tests.helpers import raises_one_line
from tests.train_data import train_settings

L1 = "crosslab/human_l1/tamas_features_E.csv"
# the Tamas table has 2 cells with an AHP of 131 mV (outside the plausible range): predict
# refuses it, so the end-to-end tests read the Mansvelder lab's table
L1_CLEAN = "crosslab/human_l1/mansvelder_features_E.csv"


@pytest.fixture(scope="module")
def scala(raw_dir):
    """Scala's cells split by animal: (features, families, held-out mask)."""
    settings = PrepareSettings()
    f, t, types, _ = paired_training_tables(
        read_paired_source("scala2021", settings, raw_dir), settings, "scala2021"
    )
    groups = types.loc[f.index, "group"].astype(str).to_numpy()
    animals = np.unique(groups)
    held = np.isin(groups, np.random.default_rng(0).choice(animals, len(animals) // 5, False))
    types = types.loc[f.index]
    return f.astype(float), types["family"].astype(str).to_numpy(), held, (t, types)


@pytest.fixture(scope="module")
def fitted(scala):
    """Gaussians and a family logistic regression on the training animals only."""
    f, fam, held, _ = scala
    X = f.to_numpy()[~held]
    G = ClassGaussians.fit(X, fam[~held], list(f.columns))
    m, s = X.mean(axis=0), X.std(axis=0)
    clf = LogisticRegression(C=1.0, max_iter=3000).fit((X - m) / s, fam[~held])
    return G, lambda Z: clf.predict((Z - m) / s)


def test_a_known_shift_of_held_out_cells_is_recovered(scala, fitted):
    """auto on held-out animals (a mixed batch): the composition test finds the mix, a
    1-SD shift on 3 features is recovered within 0.1 SD and the family accuracy comes back
    within 0.02; the unshifted batch stays exactly as it is."""
    f, fam, held, _ = scala
    G, predict = fitted
    feats = list(f.columns)
    X, y = f.to_numpy()[held], fam[held]
    shift = np.zeros(len(feats))
    shift[[feats.index("rmp"), feats.index("aphw"), feats.index("rin")]] = [1.0, -1.0, 1.0]
    shifted = G.raw(G.standardise(X) + shift)
    acc = (predict(X) == y).mean()
    assert (predict(shifted) == y).mean() < acc - 0.15  # the shift does hurt
    own = fit_alignment(X, feats, G, "auto")  # the held-out animals as they are
    al = fit_alignment(shifted, feats, G, "auto")
    assert own.composition_test["mixed"] and al.fitted and al.converged
    np.testing.assert_allclose(al.shift - own.shift, shift, atol=0.1)
    assert (predict(al.apply(shifted, feats, G)) == y).mean() >= acc - 0.02
    # a batch like the training cells stays unchanged: no shift it can tell from none
    np.testing.assert_array_equal(own.shift, 0.0)
    np.testing.assert_array_equal(own.apply(X, feats, G), X)
    assert {f for f, _ in al.largest(3)} == {"rmp", "aphw", "rin"}
    assert al.report()["composition_test"]["delta_bic"] > 10


def test_a_one_class_batch_stays_one_class(scala, fitted):
    """Held-out Exc-only and Inh-only batches, shifted or not: auto without a known class
    leaves them alone (the composition test finds one class); with the class known the
    alignment stays within it and loses no calls."""
    f, fam, held, _ = scala
    G, predict = fitted
    feats = list(f.columns)
    shift = np.zeros(len(feats))
    shift[[feats.index("rmp"), feats.index("tau")]] = [1.0, 1.0]
    for word, own in (
        ("Exc", list(EXC_FAMILIES)),
        ("Inh", ["Pvalb", "Sst", "Vip", "Lamp5", "Sncg"]),
    ):
        sel = held & np.isin(fam, own)
        for X in (f.to_numpy()[sel], G.raw(G.standardise(f.to_numpy()[sel]) + shift)):
            al = fit_alignment(X, feats, G, "auto")
            assert not al.fitted and not al.composition_test["mixed"], (word, al.report())
            np.testing.assert_array_equal(al.apply(X, feats, G), X)
            allowed = np.tile(allowed_families(word, G.classes), (len(X), 1))
            known = fit_alignment(X, feats, G, "auto", allowed)
            assert known.fitted and known.method == "auto"
            assert sum(v for k, v in known.composition.items() if k in own) > 0.999
            before = np.isin(predict(X), own).mean()
            after = np.isin(predict(known.apply(X, feats, G)), own).mean()
            assert after >= before - 0.02, (word, before, after)


def test_small_batches_are_not_aligned(scala, fitted):
    f, _, held, _ = scala
    G, _ = fitted
    X = f.to_numpy()[held]
    small = fit_alignment(X[:10], list(f.columns), G, "em_zscore", min_cells=20)
    assert not small.fitted and "10 complete cells < 20" in small.reason
    assert small.apply(X[:10], list(f.columns), G) is not X  # a copy, unchanged
    np.testing.assert_array_equal(small.apply(X[:10], list(f.columns), G), X[:10])


def test_known_classes_map_exc_inh_families_and_cre_lines():
    classes = ["CT", "ET", "IT", "Lamp5", "NP", "Pvalb", "Sncg", "Sst", "Vip"]

    def on(value):
        return [c for c, ok in zip(classes, allowed_families(value, classes), strict=True) if ok]

    assert on("Exc") == ["CT", "ET", "IT", "NP"] and on("GABAergic") == on("inh")
    assert on("Inh") == ["Lamp5", "Pvalb", "Sncg", "Sst", "Vip"]
    assert on("sst") == ["Sst"] and on("Pvalb-IRES-Cre") == ["Pvalb"]
    assert on("Vip-IRES-Cre") == ["Sncg", "Vip"] and on("") == classes
    raises_one_line("known class 'Rbp4-Cre_KL100'", allowed_families, "Rbp4-Cre_KL100", classes)


def test_an_ipfx_table_maps_names_and_units(raw_dir):
    raw = pd.read_csv(raw_dir / L1)
    assert is_ipfx_table(raw.columns)
    cells, report = ipfx_cells(raw, L1)
    assert cells["cell_id"].tolist() == raw["cell_name"].astype(str).tolist()
    np.testing.assert_allclose(cells["tau"], raw["tau"] * 1000)  # s -> ms
    ok = raw["width_rheo"] > 0
    np.testing.assert_allclose(cells.loc[ok, "aphw"], raw.loc[ok, "width_rheo"] * 1000)
    np.testing.assert_allclose(cells["apamp"], raw["peak_v_rheo"] - raw["threshold_v_rheo"])
    np.testing.assert_allclose(cells["cap"], cells["tau"] / cells["rin"] * 1000)
    assert report["not_derived"] == ["adratio", "avg_isi"]
    assert report["zero_as_missing"] == {"aphw": 1}  # ipfx's 0 = not measured
    assert cells["aphw"].isna().sum() == raw["width_rheo"].isna().sum() + 1
    # plausible physiology after conversion: ms half-widths, tens of ms time constants
    assert 0.2 < cells["aphw"].median() < 2 and 5 < cells["tau"].median() < 60
    with pytest.raises(InputError, match="no ipfx feature column"):
        ipfx_cells(pd.DataFrame({"cell_id": ["a"], "x": [1.0]}), "t.csv")


@pytest.fixture(scope="module")
def store_dir(scala, tmp_path_factory):
    """A per-cell store (model best, 30 genes, the full and Cadwell's 7-feature sets)
    trained on all Scala cells (short alpha path, 3 folds)."""
    from ephys2expr.model.store import save_model_store
    from ephys2expr.train.run import train_from_prepared

    f, _, _, (t, types) = scala
    folder = tmp_path_factory.mktemp("transfer")
    prepared = folder / "prepared"
    prepared.mkdir()
    genes = t.var(axis=1).sort_values().index[-30:]
    f.to_parquet(prepared / "train_features.parquet")
    t.loc[genes].astype(float).to_parquet(prepared / "train_targets.parquet")
    types.to_parquet(prepared / "train_types.parquet")
    cadwell = ["rheo", "maxfreq", "cap", "sag"]  # Berg's tables have no maximum rate
    # a short alpha path and 3 folds (a third of the default's time): what is tested is the
    # alignment and the identity restricted to the known class, not the genes
    settings = train_settings(
        model="best",
        n_permutations=0,
        feature_sets={"cadwell": cadwell},
        n_alphas=8,
        n_folds=3,
        inner_folds=3,
    )
    out = train_from_prepared(prepared, settings, source="scala2021")
    save_model_store(out.store, folder / "model")
    return folder / "model"


def _predict(store_dir, tmp_path, src, *sets):
    import anndata as ad
    from typer.testing import CliRunner

    from stages.predict import app

    out = tmp_path / "pred.h5ad"
    args = [
        "--model-dir",
        store_dir,
        "--input",
        src,
        "--output",
        out,
        "--metrics",
        tmp_path / "m.json",
        "--report",
        tmp_path / "r.json",
    ]
    for kv in sets:
        args += ["--set", kv]
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return ad.read_h5ad(out), json.loads((tmp_path / "r.json").read_text()), res.output


def test_an_ipfx_table_is_predicted_end_to_end_with_its_known_class(
    raw_dir, store_dir, tmp_path, caplog
):
    """The Mansvelder lab's human L1 interneurons (an ipfx table, read by detection): with
    known_class Inh the batch is aligned, the report and uns carry the fitted shift, one
    log line names the three largest shifts, and every cell is called GABAergic."""
    import logging

    caplog.set_level(logging.INFO, logger="ephys2expr")
    src = raw_dir / L1_CLEAN
    adata, report, _ = _predict(
        store_dir, tmp_path, src, "predict.known_class=Inh", "predict.missing=drop"
    )
    assert "an ipfx feature table" in caplog.text and "not derivable: adratio" in caplog.text
    cells, _ = ipfx_cells(pd.read_csv(src), str(src))
    assert adata.n_obs == int(cells[["rin", "tau", "aphw", "rheo"]].notna().all(axis=1).sum())
    al = report["inputs"]["mansvelder_features_E"]["alignment"]["all"]
    assert al["fitted"] and al["method"] == "auto" and al["converged"]
    assert set(al["shift_sd"]) >= {"rmp", "rin", "aphw", "tau"}
    assert max(abs(v) for v in al["shift_sd"].values()) > 0.2
    # the composition holds interneuron families only
    assert {k for k, v in al["composition"].items() if v > 0.01} <= {
        "Lamp5",
        "Pvalb",
        "Sncg",
        "Sst",
        "Vip",
    }
    uns = adata.uns["ephys2expr"]["alignment"]["all"]
    assert uns["shift_sd"]["rmp"] == pytest.approx(al["shift_sd"]["rmp"], abs=1e-3)  # 4 digits
    # the three largest shifts: one readable string in the report, the uns and the log line
    assert re.fullmatch(r"\w+ [+-]\d+\.\d\d(, \w+ [+-]\d+\.\d\d){2}", al["largest_shifts"])
    assert uns["largest_shifts"] == al["largest_shifts"]
    assert f"largest shifts in training SD: {al['largest_shifts']}" in caplog.text
    # the batch's temperature (identity/temper.py) from its shift, in the report and the uns
    rms = np.sqrt(np.mean(np.square(list(al["shift_sd"].values()))))
    assert al["temperature"] == pytest.approx(1 + TEMPER_SLOPE * rms, abs=1e-3)
    assert al["temperature"] > 1
    assert uns["temperature"] == pytest.approx(al["temperature"], abs=1e-3)
    assert f"tempered by the shift, T = {al['temperature']:.2f}" in caplog.text
    fam = adata.obsm["family_proba"]
    np.testing.assert_allclose(fam[["CT", "ET", "IT", "NP"]].to_numpy(), 0.0)
    np.testing.assert_allclose(fam.sum(axis=1), 1.0, rtol=1e-5)
    assert not adata.obs["family"].isin(["CT", "ET", "IT", "NP"]).any()


def test_without_a_known_class_auto_leaves_a_one_class_batch_as_it_is(
    raw_dir, store_dir, tmp_path, caplog
):
    import logging

    caplog.set_level(logging.INFO, logger="ephys2expr")
    src = raw_dir / L1_CLEAN
    plain, report, _ = _predict(
        store_dir, tmp_path, src, "predict.align=none", "predict.missing=drop"
    )
    auto, report_auto, _ = _predict(store_dir, tmp_path, src, "predict.missing=drop")
    assert not report_auto["inputs"]["mansvelder_features_E"]["alignment"]["all"]["fitted"]
    assert "not aligned (one-class batch (composition test))" in caplog.text
    assert "composition test one class" in caplog.text
    test = report_auto["inputs"]["mansvelder_features_E"]["alignment"]["all"]["composition_test"]
    assert not test["mixed"] and test["delta_bic"] <= 10
    np.testing.assert_array_equal(plain.X, auto.X)


def test_the_transfer_table_of_validate_on_two_foreign_sets(raw_dir, store_dir, tmp_path):
    """validate's transfer section on Berg's mouse L2/3 cells (all excitatory) and the Tamas
    lab's human L1 cells (all GABAergic): auto without a known class changes nothing, with it
    every cell is of its class, and alignment by EM does not lose a one-class set's calls."""
    from ephys2expr.model.store import load_model_store
    from ephys2expr.validate.transfer.scores import transfer_summary, transfer_table
    from ephys2expr.validate.transfer.sets import transfer_sets

    prepared = tmp_path / "prepared"
    prepared.mkdir()
    store = load_model_store(store_dir)
    allen = pd.DataFrame({f: [np.nan] for f in store.features}, index=["x"]).assign(
        cre_line="Sst-IRES-Cre", layer="5", dendrite_type="aspiny"
    )
    for v in ("v6", "v10"):
        allen.to_parquet(prepared / f"cells_aibs_{v}.parquet")
    sets = transfer_sets(raw_dir, prepared)
    assert len(sets["berg_mouse"].cells) == 131 and len(sets["l1_tamas"].cells) == 67
    aspiny = sets["allen_v6_aspiny"]  # the aspiny cells, a batch of their own, known Inh
    assert aspiny.cre and list(aspiny.known) == ["Inh"] and aspiny.expected == [("Sst",)]
    table = transfer_table(store, {k: sets[k] for k in ("berg_mouse", "l1_tamas")})
    t = table.set_index(["set", "method", "known_class"])["exc_inh_agreement"]
    for name in ("berg_mouse", "l1_tamas"):
        assert t[(name, "auto", False)] == t[(name, "none", False)]
        assert t[(name, "auto", True)] == 1.0
    assert t[("berg_mouse", "em_shift", False)] >= t[("berg_mouse", "none", False)] - 0.02
    # Pvalb/Sst/Vip-line agreement is for Cre-line sets: none for the VIP-homology L1 cells
    assert table.loc[table["set"] == "l1_tamas", "family_agreement_psv"].isna().all()
    shifts = table.set_index(["set", "method", "known_class"])["largest_shifts"]
    assert shifts[("l1_tamas", "none", False)] == "" and shifts[("l1_tamas", "auto", False)] == ""
    assert shifts[("l1_tamas", "auto", True)].count(",") == 2  # "ahpamp +1.60, tau -1.29, ..."
    summary = transfer_summary(table)
    assert summary["one_class_worst_loss_auto"] == 0.0
    assert summary["one_class_min_share_known"] == 1.0
    # the agreement apart for the cells with every feature and those without (Berg: no
    # maximum rate on any cell): the two parts make the whole
    rows = table.set_index(["set", "method", "known_class"])
    berg = rows.loc[("berg_mouse", "none", False)]
    assert berg["n_incomplete"] == berg["n_classified"] > 0
    assert pd.isna(berg["exc_inh_agreement_complete"])
    for name in ("berg_mouse", "l1_tamas"):
        r = rows.loc[(name, "auto", False)]
        n, k = r["n_classified"], r["n_incomplete"]
        parts = np.nan_to_num([r["exc_inh_agreement_complete"], r["exc_inh_agreement_incomplete"]])
        assert ((n - k) * parts[0] + k * parts[1]) / n == pytest.approx(r["exc_inh_agreement"])


def test_cells_that_measured_fewer_features_are_aligned_on_their_own(scala, fitted):
    """A lab that measured tau on 40 % of its cells, and recorded the others (another
    protocol) with an rmp 0.8 SD higher still: the batch's shift is fitted on the cells with
    tau and moves tau too; the cells without tau are a sub-batch whose own shift is
    recovered (rmp included), and the report carries both."""
    f, fam, held, _ = scala
    G, predict = fitted
    feats = list(f.columns)
    shift = np.zeros(len(feats))
    shift[[feats.index("tau"), feats.index("rmp"), feats.index("aphw")]] = [1.0, -1.0, 1.0]
    X = G.raw(G.standardise(f.to_numpy()[held]) + shift)
    lack = np.arange(len(X)) % 5 >= 2
    X[lack, feats.index("rmp")] = G.raw(G.standardise(X[lack]) + 0.8 * (np.array(feats) == "rmp"))[
        :, feats.index("rmp")
    ]
    X[lack, feats.index("tau")] = np.nan
    own = fit_alignment(f.to_numpy()[held], feats, G, "auto")
    al = fit_alignment(X, feats, G, "auto")
    assert al.fitted and "tau" in al.features and len(al.features) == len(feats)
    np.testing.assert_allclose(al.shift - own.shift, shift, atol=0.15)
    (part,) = al.parts
    assert part.n_cells == lack.sum() and part.reason == "cells without tau"
    assert part.features == [x for x in feats if x != "tau"]
    want = np.delete(shift + 0.8 * (np.array(feats) == "rmp"), feats.index("tau"))
    np.testing.assert_allclose(
        part.shift - np.delete(own.shift, feats.index("tau")), want, atol=0.2
    )
    back = al.apply(X, feats, G)[lack]
    true = f.to_numpy()[held][lack]
    back[:, feats.index("tau")] = true[:, feats.index("tau")]  # the classifier needs a tau
    assert (predict(back) == fam[held][lack]).mean() >= (
        predict(true) == fam[held][lack]
    ).mean() - 0.05
    report = al.report()
    assert report["parts"]["cells without tau"]["n_cells"] == lack.sum()
    assert (
        report["largest_shifts"] == al.largest_text() and report["largest_shifts"].count(",") == 2
    )


def test_cadwell_interval_coverage_with_and_without_alignment(raw_dir, store_dir):
    """Cadwell's 48 layer-1 interneurons: their measured expression inside the store's 90 %
    intervals, by the store's Cadwell feature set. auto without a known class finds one class
    and changes nothing; with known class Inh the cells are aligned and the coverage moves."""
    from ephys2expr import paths
    from ephys2expr.model.store import load_model_store
    from ephys2expr.readers.cadwell import read_cadwell
    from ephys2expr.validate.transfer.scores import cadwell_coverage

    cadwell = read_cadwell(
        *(
            paths.in_raw_dir(raw_dir, p)
            for p in (
                paths.CADWELL_EXPR,
                paths.CADWELL_META,
                paths.CADWELL_EPHYS,
                paths.CADWELL_SDRF,
            )
        )
    )
    cov = cadwell_coverage(load_model_store(store_dir), cadwell).set_index("alignment")
    assert cov["n_cells"].eq(48).all() and cov["n_genes"].gt(0).all()
    assert cov.loc["none", "coverage"] == cov.loc["auto", "coverage"]
    assert cov.loc["auto, known Inh", "coverage"] != cov.loc["none", "coverage"]
    assert cov["coverage"].between(0.3, 1.0).all()
