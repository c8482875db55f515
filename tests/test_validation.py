"""Joint spaces, embeddings and the validation numbers, on realistic synthetic data."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr
from typer.testing import CliRunner

from ephys2expr.errors import InputError
from ephys2expr.train.settings import TrainSettings
from ephys2expr.validate import agreement, embedding
from ephys2expr.validate.patchseq import cadwell as patchseq
from ephys2expr.validate.settings import ValidateSettings

GROUPS = ["Pvalb", "Sst", "Vip", "Exc L4", "Exc L5"]


def _two_sources(seed=0, n_pred=150, n_meas=200, n_genes=60, n_feat=11):
    """Predicted = low-rank linear function of 'ephys'; measured = type profile + noise.

    Both share the same group profiles; measured has extra high-dimensional noise and a
    per-gene offset, as real single-cell data has relative to predictions.
    """
    rng = np.random.default_rng(seed)
    prof = rng.normal(0, 2, size=(len(GROUPS), n_genes))
    gp = rng.integers(0, len(GROUPS), n_pred)
    gm = rng.integers(0, len(GROUPS), n_meas)
    # predictions: group profile seen through a rank-n_feat linear map (shrunk, smooth)
    load = rng.normal(size=(n_feat, n_genes))
    proj = load.T @ np.linalg.pinv(load.T)
    pred = (prof[gp] @ proj.T) * 0.5 + rng.normal(0, 0.05, size=(n_pred, n_feat)) @ load
    meas = prof[gm] + rng.normal(0, 1.5, size=(n_meas, n_genes)) + rng.normal(0, 3, n_genes)
    genes = [f"g{i}" for i in range(n_genes)]
    P = pd.DataFrame(pred, index=[f"p{i}" for i in range(n_pred)], columns=genes)
    M = pd.DataFrame(meas, index=[f"m{i}" for i in range(n_meas)], columns=genes)
    return (
        P,
        pd.Series(np.array(GROUPS)[gp], index=P.index),
        M,
        pd.Series(np.array(GROUPS)[gm], index=M.index),
    )


def test_type_agreement_matched_beats_unmatched_and_shuffling_breaks_it():
    P, gp, M, gm = _two_sources()
    corr, s = agreement.type_agreement(P, gp, M, gm)
    assert s["matched_r_median"] > s["unmatched_r_median"] + 0.3
    assert s["top1"] >= 0.8  # a rank-11 projection may confuse a pair of groups
    # a cell of corr is np.corrcoef of the gene-centred group means
    pm = P.groupby(gp).mean().loc[corr.index]
    mm = M.groupby(gm).mean().loc[corr.columns]
    pm, mm = pm - pm.mean(), mm - mm.mean()
    np.testing.assert_allclose(corr.iat[1, 2], np.corrcoef(pm.iloc[1], mm.iloc[2])[0, 1])
    rng = np.random.default_rng(1)
    _, s_shuf = agreement.type_agreement(
        P, pd.Series(rng.permutation(gp.to_numpy()), index=gp.index), M, gm
    )
    assert s_shuf["matched_r_median"] < s["matched_r_median"] - 0.3


def test_type_agreement_drops_small_groups():
    P, gp, M, gm = _two_sources()
    gp = gp.copy()
    gp.iloc[:2] = "Ndnf"  # only 2 predicted cells
    corr, s = agreement.type_agreement(P, gp, M, gm, min_cells=3)
    assert "Ndnf" not in corr.index


def test_zscore_joint_space_separates_sources_and_pc_align_mixes_them():
    P, gp, M, gm = _two_sources()
    X = np.vstack([P.to_numpy(), M.to_numpy()])
    src = np.array(["predicted"] * len(P) + ["measured"] * len(M))
    labels = np.concatenate([gp.to_numpy(), gm.to_numpy()])
    res = {}
    for corr in embedding.CORRECTIONS:
        J = embedding.joint_space(X, src, corr, n_components=8, seed=0)
        frac, expected = embedding.mixing_fraction(J, src, "predicted", "measured", k=10)
        tr = agreement.label_transfer(J, src, labels, k=10)
        res[corr] = (frac.mean(), expected, tr)
    assert res["pc_align"][0] > res["zscore"][0] + 0.1
    assert res["pc_align"][0] <= res["pc_align"][1] + 0.2
    # the shared type structure survives the correction: labels transfer well above chance
    tr = res["pc_align"][2]
    assert tr["balanced_accuracy"] > tr["chance_balanced_accuracy"] + 0.3


def test_mixing_fraction_against_brute_force():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    src = np.array(["predicted", "measured"] * 20)
    frac, expected = embedding.mixing_fraction(X, src, "predicted", "measured", k=5)
    D = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    q = np.flatnonzero(src == "predicted")
    brute = [(src[np.argsort(D[i])[:5]] == "measured").mean() for i in q]
    np.testing.assert_allclose(frac, brute)
    assert expected == pytest.approx(20 / 39)


def test_label_transfer_chance_baseline_and_unlabelled_queries():
    rng = np.random.default_rng(4)
    X = np.vstack([rng.normal(0, 1, (50, 2)), rng.normal(8, 1, (50, 2))])
    lab = np.array(["Exc"] * 50 + ["Inh"] * 50, dtype=object)
    src = np.where(np.arange(100) % 2 == 0, "measured", "predicted")
    lab[1] = ""  # a predicted cell without truth is not scored
    out = agreement.label_transfer(X, src, lab, k=5)
    assert out["n_query"] == 49
    assert out["accuracy"] == 1.0
    assert out["chance_balanced_accuracy"] == 0.5
    # shuffled labels: near chance
    lab2 = rng.permutation(np.array(["Exc"] * 50 + ["Inh"] * 50))
    out2 = agreement.label_transfer(X, src, lab2, k=5)
    assert out2["balanced_accuracy"] < 0.75


def test_patchseq_agreement_against_scipy_and_baseline():
    rng = np.random.default_rng(5)
    n_cells, n_genes = 30, 40
    base = pd.Series(rng.uniform(0, 6, n_genes), index=[f"g{i}" for i in range(n_genes)])
    signal = rng.normal(0, 1, (n_cells, n_genes))
    meas = pd.DataFrame(
        base.to_numpy() + signal + rng.normal(0, 0.5, (n_cells, n_genes)), columns=base.index
    )
    pred = pd.DataFrame(base.to_numpy() + 0.8 * signal, columns=base.index)
    pred["g0"] = base["g0"]  # a gene with all-zero coefficients: predicted constant
    per_gene, per_cell, s = patchseq.patchseq_agreement(pred, meas, base, ["g1", "g2"])
    r, _ = pearsonr(pred["g5"], meas["g5"])
    assert per_gene.loc["g5", "r"] == pytest.approx(r)
    assert np.isnan(per_gene.loc["g0", "r"]) and not per_gene.loc["g0", "predicted_varies"]
    assert not per_gene.loc["g0", "beats_baseline"]  # equal errors are no win
    assert s["genes_all"]["n_beat_baseline"] == n_genes - 1
    assert s["genes_cv_good"]["n_genes"] == 2
    rc, _ = pearsonr(pred.iloc[3], meas.iloc[3])
    assert per_cell["r_model"].iloc[3] == pytest.approx(rc)
    assert s["cells"]["n_cells_model_beats_baseline"] == n_cells
    assert s["cells"]["median_r_deviation"] > 0.5
    # a model that predicts noise does not beat the baseline on the deviations
    noise = pd.DataFrame(base.to_numpy() + rng.normal(0, 1, (n_cells, n_genes)), columns=base.index)
    _, _, s2 = patchseq.patchseq_agreement(noise, meas, base)
    assert abs(s2["cells"]["median_r_deviation"]) < 0.2
    assert s2["genes_all"]["n_beat_baseline"] < n_genes / 4


def test_validation_predicts_with_the_stored_feature_set_only():
    """The set of exactly the asked features (in any order) predicts, through the store's
    own prediction; a store without it is a one-line error naming train.feature_sets."""
    from ephys2expr.model.store import join_feature_sets, store_from_estimator

    rng = np.random.default_rng(6)
    feats = pd.DataFrame(
        rng.normal(size=(20, 4)),
        columns=["rmp", "rin", "tau", "aphw"],
        index=[f"t{i}" for i in range(20)],
    )
    Y = feats.to_numpy() @ rng.normal(size=(4, 5)) + rng.normal(0, 0.3, (20, 5))
    genes = pd.Index([f"g{i}" for i in range(5)])
    settings = TrainSettings(alpha=0.05)
    models = []
    for name, cols in (("full", list(feats.columns)), ("two", ["rin", "tau"])):
        est = settings.estimator().fit(feats[cols].to_numpy(), Y)
        models.append(store_from_estimator(est, feats[cols], genes, feature_set=name))
    store = join_feature_sets(models)
    predict, name = patchseq.stored_feature_set(store, ["tau", "rin"], genes[::-1])
    assert name == "two"
    got = predict(feats)
    want = store.model("two").predict(feats)
    np.testing.assert_array_equal(got.to_numpy(), want[:, ::-1])
    assert list(got.columns) == list(genes[::-1])
    with pytest.raises(
        InputError,
        match=r"^here: no feature set of exactly rin, aphw .*"
        r"train.feature_sets; the store offers full \(rmp, rin, tau, aphw\)",
    ):
        patchseq.stored_feature_set(store, ["rin", "aphw"], genes, "here")


def test_outside_training_range():
    train = pd.DataFrame({"tau": [5.0, 10.0, 20.0]})
    X = pd.DataFrame({"tau": [2.0, 7.0, 25.0, np.nan]})
    assert patchseq.outside_training_range(X, train)["tau"] == pytest.approx(2 / 3)


def test_embeddings_are_seeded_and_runner_matches_in_process():
    rng = np.random.default_rng(7)
    X = np.vstack([rng.normal(0, 1, (40, 8)), rng.normal(5, 1, (40, 8))])
    a = embedding.embed_2d(X, "tsne", seed=0)
    b = embedding.embed_2d(X, "tsne", seed=0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (80, 2)
    # clusters stay apart in 2-D
    assert np.linalg.norm(a[:40].mean(0) - a[40:].mean(0)) > 3 * a[:40].std(axis=0).max()
    # UMAP is left to the stage run: compiling umap-learn's kernels alone takes ~30 s
    r1 = embedding.EmbeddingRunner(n_jobs=1).run({"x": X}, methods=("tsne",), seed=0)
    np.testing.assert_array_equal(r1["x"]["tsne"], a)
    with pytest.raises(ValueError, match="method"):
        embedding.embed_2d(X, "pca")


def test_stage_bad_reference_is_one_line_exit_2(tmp_path):
    from stages.validate import app

    res = CliRunner().invoke(
        app,
        [
            "--model-dir",
            str(tmp_path),
            "--set",
            "reference=xyz",
            "--metrics",
            str(tmp_path / "m.json"),
        ],
    )
    assert res.exit_code == 2
    assert "validate.reference: 'xyz' must be 'rda' or 'geo'" in res.output
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("reference=xyz", "validate.reference: 'xyz' must be 'rda' or 'geo'"),
        ("patchseq_features=rmp", "validate.patchseq_features: unknown setting"),
        ("n_neighbors=0", "validate.n_neighbors: 0 is below 1"),
        ("tsne_max_iter=100", "validate.tsne_max_iter: 100 is below 250"),
        ("seed=-1", "validate.seed: -1 is below 0"),
        ("max_cells=many", "validate.max_cells: 'many' is not a whole number"),
        ("n_pca=3", "validate.n_pca: unknown setting"),
    ],
)
def test_validate_settings_errors_name_the_key(override, message):
    with pytest.raises(InputError, match=re.escape(message)):
        ValidateSettings.from_params(None, [override])
    assert ValidateSettings.from_params(None).as_dict() == ValidateSettings().as_dict()


def test_the_committed_validate_report_holds_label_transfer_and_the_cross_lab_section():
    """validate's Exc/Inh label transfer (measured vs predicted expression) and its cross-lab
    section are two results of the same run: one never overwrites the other (a merge once
    gave both one variable name, and dvc repro failed writing the report). Checked on the
    report the pipeline committed (reports/validate.json, real data)."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    report = json.loads((root / "reports" / "validate.json").read_text())
    for space in ("zscore", "pc_align"):
        assert 0.5 <= report["label_transfer"][space]["accuracy"] <= 1.0
    sets = {row["set"] for row in report["transfer"]["table"]}
    assert {"allen_v6", "allen_v10", "cadwell", "l1_allen", "berg_human"} <= sets
