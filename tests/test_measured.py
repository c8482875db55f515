"""Readers of measured expression: Tasic 2016 (RData and GEO layouts), Cadwell 2016 Patch-seq."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.bench_validate import log2_cpm_loop
from ephys2expr import paths
from ephys2expr.errors import InputError
from ephys2expr.readers.cadwell import (
    CADWELL_FIELDS,
    check_feature_units,
    read_cadwell,
    read_cadwell_ephys,
    read_sdrf_join,
)
from ephys2expr.readers.counts import log2_cpm, log2_stored_tpm_plus_one, read_geo_counts
from ephys2expr.readers.palette import read_palette
from ephys2expr.readers.tasic import (
    TASIC_KEEP_BROAD,
    filter_tasic_cells,
    read_tasic_annotation,
    read_tasic_geo,
    read_tasic_rda,
)
from ephys2expr.taxonomy import cre_group, exc_inh_truth, type_group

ROOT = paths.ROOT


@pytest.fixture(scope="module")
def tasic():
    return read_tasic_rda(ROOT / paths.TASIC_EXPR, ROOT / paths.TASIC_META)


def test_tasic_rda_is_log2_of_stored_tpm_plus_one(tasic):
    import rdata

    raw = rdata.read_rda(ROOT / paths.TASIC_EXPR)["aibsExprData"]
    raw = pd.DataFrame(
        raw.values, index=raw.coords["dim_0"].values, columns=raw.coords["dim_1"].values
    )
    # stored values are TPM + 1 (minimum exactly 1): log2 of them, no extra +1
    assert raw.to_numpy().min() == 1.0
    cell = tasic.expr.index[5]
    np.testing.assert_allclose(
        tasic.expr.loc[cell].to_numpy(), np.log2(raw[cell].loc[tasic.expr.columns].to_numpy())
    )
    assert tasic.expr.to_numpy().min() == 0.0
    assert tasic.expr.shape[1] == raw.shape[0]


def test_tasic_rda_keeps_neurons_with_groups(tasic):
    import rdata

    meta = rdata.read_rda(ROOT / paths.TASIC_META)["aibsExprMeta"]
    n_neurons = meta["norm_broad_types"].astype(str).isin(["Inhibitory", "Pyramidal"]).sum()
    assert len(tasic.expr) == n_neurons
    assert set(tasic.meta["broad"]) == {"Exc", "Inh"}
    # every interneuron family and excitatory layer is represented
    for g in ("Pvalb", "Sst", "Vip", "Ndnf", "Exc L2/3", "Exc L4", "Exc L5", "Exc L6"):
        assert (tasic.meta["group"] == g).sum() >= 20, g
    # group agrees with class: no Exc group among inhibitory cells
    inh_groups = set(tasic.meta.loc[tasic.meta["broad"] == "Inh", "group"])
    assert not any(g.startswith("Exc") for g in inh_groups)


def test_stored_matrix_below_one_is_rejected():
    bad = pd.DataFrame([[0.5, 2.0], [1.0, 3.0]], index=["a", "b"], columns=["c1", "c2"])
    with pytest.raises(InputError, match="TPM \\+ 1"):
        log2_stored_tpm_plus_one(bad, "x.rda")


def test_tasic_annotation_filters_match_the_original_rules():
    anno = read_tasic_annotation(ROOT / paths.TASIC_ANNO)
    assert anno.index.is_unique
    kept = filter_tasic_cells(anno)
    assert set(kept["tdTomato"]) == {"positive"}
    assert set(kept["pass_qc_checks"]) == {"Y"}
    assert set(kept["broad_type"]) == set(TASIC_KEEP_BROAD)
    # nothing that passes all three rules was dropped
    rest = anno.drop(kept.index)
    ok = (
        (rest["tdTomato"] == "positive")
        & (rest["pass_qc_checks"] == "Y")
        & rest["broad_type"].isin(TASIC_KEEP_BROAD)
    )
    assert not ok.any()
    assert 0 < len(kept) < len(anno)


def test_log2_cpm_matches_loop_and_definition():
    rng = np.random.default_rng(0)
    counts = rng.poisson(3.0, size=(200, 30)).astype(float)
    counts[:, 4] = 0.0  # an empty cell: zeros, not NaN
    fast = log2_cpm(counts)
    np.testing.assert_allclose(fast, log2_cpm_loop(counts), rtol=1e-12)
    j = 7
    np.testing.assert_allclose(fast[:, j], np.log2(counts[:, j] / counts[:, j].sum() * 1e6 + 1))
    assert np.all(fast[:, 4] == 0.0)


def _write_geo_layout(tmp_path):
    """Small files in the GSE71585 layouts: 6 genes x 5 cells and their clustering rows."""
    cells = [
        "Pvalb_tdTpositive_cell_1",
        "Sst_tdTpositive_cell_2",
        "Vip_tdTnegative_cell_3",
        "Rbp4_tdTpositive_cell_4",
        "Cux2_tdTpositive_cell_5",
    ]
    genes = ["Pvalb", "Sst", "Vip", "Rbp4", "Cux2", "Snap25"]
    rng = np.random.default_rng(1)
    counts = pd.DataFrame(rng.integers(0, 500, size=(6, 5)), index=genes, columns=cells)
    counts.index.name = "gene"
    counts.to_csv(tmp_path / "GSE71585_RefSeq_counts.csv")
    clus = pd.DataFrame(
        {
            "sample_title": cells,
            "primary_type": ["Pvalb Tacr3", "Sst Cbln4", "Vip Chat", "L5a Batf3", "Unclassified"],
            "cre_driver_1": [
                "Pvalb-IRES-Cre",
                "Sst-IRES-Cre",
                "Vip-IRES-Cre",
                "Rbp4-Cre_KL100",
                "Cux2-CreERT2",
            ],
            "tdTomato": ["positive", "positive", "negative", "positive", "positive"],
            "pass_qc_checks": ["Y", "N", "Y", "Y", "Y"],
            "broad_type": [
                "GABA-ergic Neuron",
                "GABA-ergic Neuron",
                "GABA-ergic Neuron",
                "Glutamatergic Neuron",
                "Unclassified",
            ],
        }
    )
    clus.to_csv(tmp_path / "GSE71585_Clustering_Results.csv", index=False)
    return counts, clus


def test_geo_layout_reader_filters_and_normalises(tmp_path):
    counts, _ = _write_geo_layout(tmp_path)
    ms = read_tasic_geo(
        tmp_path / "GSE71585_RefSeq_counts.csv",
        tmp_path / "GSE71585_Clustering_Results.csv",
        genes=["Pvalb", "Rbp4", "NotAGene"],
    )
    # Sst failed QC, Vip is tdTomato negative, Cux2 is Unclassified
    assert list(ms.expr.index) == ["Pvalb_tdTpositive_cell_1", "Rbp4_tdTpositive_cell_4"]
    assert list(ms.expr.columns) == ["Pvalb", "Rbp4"]
    # CPM over ALL genes of the file, not only the requested ones
    c = counts["Rbp4_tdTpositive_cell_4"]
    expect = np.log2(c / c.sum() * 1e6 + 1)
    np.testing.assert_allclose(ms.expr.loc["Rbp4_tdTpositive_cell_4", "Rbp4"], expect["Rbp4"])
    assert list(ms.meta["broad"]) == ["Inh", "Exc"]
    assert list(ms.meta["group"]) == ["Pvalb", "Exc L5"]
    assert list(ms.meta["cre_line"]) == ["Pvalb-IRES-Cre", "Rbp4-Cre_KL100"]


def test_geo_counts_bad_layouts(tmp_path):
    p = tmp_path / "counts.csv"
    pd.DataFrame({"symbol": ["a"], "c1": [1]}).to_csv(p, index=False)
    with pytest.raises(InputError, match="first column must be 'gene'"):
        read_geo_counts(p)
    pd.DataFrame({"gene": ["a", "b"], "c1": [1, -2]}).to_csv(p, index=False)
    with pytest.raises(InputError, match="negative count in column 'c1'"):
        read_geo_counts(p)
    pd.DataFrame({"gene": ["a", "b"], "c1": [1, "x"]}).to_csv(p, index=False)
    with pytest.raises(InputError, match="'c1' is not numeric"):
        read_geo_counts(p)
    clus = tmp_path / "clus.csv"
    pd.DataFrame({"sample_title": ["c1"], "tdTomato": ["positive"]}).to_csv(clus, index=False)
    with pytest.raises(InputError, match="missing column 'cre_driver_1'"):
        read_tasic_annotation(clus)


@pytest.fixture(scope="module")
def cadwell():
    return read_cadwell(
        ROOT / paths.CADWELL_EXPR,
        ROOT / paths.CADWELL_META,
        ROOT / paths.CADWELL_EPHYS,
        ROOT / paths.CADWELL_SDRF,
    )


def test_cadwell_join_through_sdrf(cadwell):
    ephys = read_cadwell_ephys(ROOT / paths.CADWELL_EPHYS)
    runs = read_sdrf_join(ROOT / paths.CADWELL_SDRF)
    assert len(cadwell.expr) == len(ephys)  # every ephys cell has expression
    # the join is the sdrf mapping, cell by cell
    for run, idx in cadwell.meta["idx"].items():
        assert runs.loc[idx] == run
        pd.testing.assert_series_equal(
            cadwell.features.loc[run],
            ephys.loc[idx, cadwell.features.columns].astype(float),
            check_names=False,
        )
    assert set(cadwell.meta["major_type"]) <= {"eNGC", "SBC", "unknown"}
    assert cadwell.expr.to_numpy().min() == 0.0


def test_cadwell_features_are_in_project_units(cadwell):
    f = cadwell.features
    assert list(f.columns) == list(CADWELL_FIELDS.values())
    assert f["aphw"].median() < 5  # ms, not us; > 0.1 so not s
    assert f["aphw"].median() > 0.1
    assert 10 < f["rin"].median() < 2000  # MOhm
    assert -90 < f["rmp"].median() < -40  # mV
    assert f.isna().sum().sum() > 0  # some cells lack a feature: kept as NaN, not 0


def test_unit_mismatch_is_an_input_error():
    df = pd.DataFrame({"aphw": [0.0009, 0.001], "rin": [100.0, 120.0]})  # width in seconds
    with pytest.raises(InputError, match="'aphw'.*wrong units"):
        check_feature_units(df, "ephys.mat")


def test_sdrf_bad_source_name(tmp_path):
    p = tmp_path / "s.sdrf.txt"
    p.write_text("Source Name\tComment[ENA_RUN]\nCell_1\tERR1\n")
    with pytest.raises(InputError, match="'Cell_1' is not Int_<idx>"):
        read_sdrf_join(p)


def test_palette(tmp_path):
    pal = read_palette(ROOT / paths.DRIVER_PALETTE)
    assert pal["Pvalb-IRES-Cre"].startswith("#")
    assert len(pal) == len(pd.read_csv(ROOT / paths.DRIVER_PALETTE))
    p = tmp_path / "pal.csv"
    p.write_text("driver_lines_label,driver_lines_color\nX-Cre,red\n")
    with pytest.raises(InputError, match="'red' is not #RRGGBB"):
        read_palette(p)


@pytest.mark.parametrize(
    ("label", "group"),
    [
        ("Vip Chat", "Vip"),
        ("L2/3 Ptgs2", "Exc L2/3"),
        ("L5a Batf3", "Exc L5"),
        ("L6b Rgs12", "Exc L6"),
        ("Ndnf Car4", "Ndnf"),
        ("Astro Gja1", "Non-neuronal"),
        ("Sncg", "other"),
    ],
)
def test_type_group(label, group):
    assert type_group(label) == group


def test_cre_group_and_exc_inh():
    assert cre_group("Pvalb-IRES-Cre", "5", "aspiny") == "Pvalb"
    assert cre_group("Htr3a-Cre_NO152", "2/3", "aspiny") == "Ndnf"
    assert cre_group("Chrna2-Cre_OE25", "5", "spiny") == "Exc L5"
    assert cre_group("Chrna2-Cre_OE25", "5", "aspiny") == "Sst"
    assert cre_group("Rorb-IRES2-Cre", "4", "spiny") == "Exc L4"
    assert cre_group("Ntsr1-Cre_GN220", "6a", "spiny") == "Exc L6"
    assert cre_group("Gad2-IRES-Cre", "2/3", "aspiny") == "other"
    assert exc_inh_truth("Rbp4-Cre_KL100", "spiny") == "Exc"
    assert exc_inh_truth("Vip-IRES-Cre", "sparsely spiny") == "Inh"
    assert exc_inh_truth("Rbp4-Cre_KL100", "sparsely spiny") == ""
