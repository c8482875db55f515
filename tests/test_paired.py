"""Paired (Patch-seq) readers: the generic layout, Scala et al. 2021, and every bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ephys2expr.errors import InputError
from ephys2expr.readers.counts import log2_cpm_library, read_counts
from ephys2expr.readers.paired_layout import (
    FAMILY_BROAD_TYPE,
    MetadataColumns,
    PairedSet,
    read_paired,
)
from ephys2expr.readers.scala import (
    EPHYS_FILE,
    FEATURE_MAP,
    HVG_FILE,
    META_FILE,
    RDA_FILE,
    STEP_DURATION_S,
    hvg_cell_ids,
    map_features,
    merge_gene_subsets,
    read_scala2021,
)
from tests.helpers import raises_one_line

ROOT = Path(__file__).resolve().parent.parent
SCALA_DIRS = [ROOT / "data" / "raw" / "scala2021", Path("/work/shared/data/raw/scala2021")]


@pytest.fixture(scope="module")
def scala_dir() -> Path:
    """The real Scala 2021 files: $EPHYS2EXPR_SCALA2021, else data/raw/scala2021."""
    env = os.environ.get("EPHYS2EXPR_SCALA2021")
    for d in ([Path(env)] if env else []) + SCALA_DIRS:
        if (d / RDA_FILE).is_file():
            return d
    pytest.fail("data/raw/scala2021 is missing: run `dvc pull` first")


@pytest.fixture(scope="module")
def scala(scala_dir) -> PairedSet:
    """The real Scala 2021 paired set, read once (a few seconds: the .rda parse)."""
    return read_scala2021(scala_dir)


@pytest.fixture(scope="module")
def raw_tables(scala_dir) -> dict[str, pd.DataFrame]:
    meta = pd.read_csv(scala_dir / META_FILE, sep="\t").set_index("Cell")
    ephys = pd.read_csv(scala_dir / EPHYS_FILE).set_index("cell id")
    hvg = pd.read_csv(scala_dir / HVG_FILE, index_col=0)
    return {"meta": meta, "ephys": ephys, "hvg": hvg}


# --------------------------------------------------------------------------- Scala 2021


def test_scala_cells_and_exclusions(scala):
    r = scala.report
    assert r["cells"]["features"] == 1328 and r["cells"]["metadata"] == 1329
    ex = r["excluded"]
    assert ex["low quality"] == 97
    assert ex["missing ephys"] == 1  # 20190211_sample_10 has metadata but no ephys row
    assert ex["incomplete ephys"] == 7  # ISI adaptation index missing (too few APs)
    assert ex["missing counts (hvg1000 subset)"] == 15
    assert ex["missing counts (rda subset)"] == 15
    assert ex["counts differ between gene subsets"] == 1
    assert ex["library size below counted reads"] == 72
    assert ex["library size inconsistent"] == 50
    assert r["final_cells"] == 1329 - sum(ex.values()) == 1070
    assert scala.features.shape == (1070, 13) and scala.expression.shape == (1978, 1070)
    assert list(scala.expression.columns) == list(scala.features.index)
    assert list(scala.metadata.index) == list(scala.features.index)
    assert r["groups"] == scala.metadata["group"].nunique() == 258
    assert "low quality" not in set(scala.metadata["family"])
    assert not scala.features.isna().any().any()
    assert (scala.features.dtypes == np.float64).all()
    assert (scala.expression.dtypes == np.float64).all()


def test_scala_gene_subsets_merge_and_agree(scala):
    g = scala.report["gene_subsets"]
    assert g["rda"] == {"genes": 1286, "cells": 1208}
    assert g["hvg1000"] == {"genes": 1000, "cells": 1213}
    shared = g["shared_genes_rda_hvg1000"]
    assert shared["genes"] == 308 and shared["cells_compared"] == 1193
    assert shared["cells_differing"] == ["20171207_sample_6"]
    assert shared["genes_identical_in_agreeing_cells"] == 308  # every other cell: identical
    assert shared["largest_difference"] == {
        "gene": "Meg3",
        "cell": "20171207_sample_6",
        "rda": 756.0,
        "hvg1000": 70161.0,
    }
    assert g["merged"]["genes"] == scala.report["genes"] == 1978
    assert "20171207_sample_6" not in scala.features.index


def test_scala_expression_uses_exon_reads(scala, raw_tables):
    """log2(CPM + 1) with CPM from `Exon reads`, not from the counted genes' sum."""
    meta, hvg = raw_tables["meta"], raw_tables["hvg"]
    cell = scala.features.index[10]
    counts = hvg[cell.replace("_", "")]
    expected = np.log2(counts * 1e6 / meta.loc[cell, "Exon reads"] + 1)
    np.testing.assert_allclose(scala.expression.loc[counts.index, cell], expected, rtol=1e-12)
    assert scala.metadata.loc[cell, "library_size"] == meta.loc[cell, "Exon reads"]
    by_sum = np.log2(counts * 1e6 / counts.sum() + 1)
    assert not np.allclose(scala.expression.loc[counts.index, cell], by_sum)


def test_scala_feature_mapping_on_real_cells(scala, raw_tables):
    e = raw_tables["ephys"].loc[scala.features.index]
    f = scala.features
    np.testing.assert_array_equal(f["rin"], e["Input resistance (MOhm)"])
    np.testing.assert_array_equal(f["apamp"], e["AP amplitude (mV)"])
    np.testing.assert_array_equal(f["ahpamp"], -e["Afterhyperpolarization (mV)"])
    np.testing.assert_allclose(f["maxfreq"] * 0.6, e["Max number of APs"], rtol=1e-12)
    np.testing.assert_allclose(f["latency"], e["Latency (ms)"] / 1000, rtol=1e-12)
    np.testing.assert_allclose(f["sag"], 1 - 1 / e["Sag ratio"], rtol=1e-12)
    np.testing.assert_allclose(
        f["cap"], 1000 * e["Membrane time constant (ms)"] / e["Input resistance (MOhm)"]
    )
    # Units: ms, s, Hz, mV in the ranges the project's Allen-derived features have.
    assert 0.2 < f["aphw"].median() < 2 and f["latency"].max() < STEP_DURATION_S
    assert 10 < f["maxfreq"].median() < 100 and 5 < f["ahpamp"].median() < 20
    assert 0 < f["sag"].median() < 0.3 and 20 < f["cap"].median() < 200


def test_scala_broad_type_from_family(scala):
    m = scala.metadata
    inh = m["family"].isin(["Pvalb", "Sst", "Vip", "Lamp5", "Sncg"])
    exc = m["family"].isin(["IT", "ET", "CT", "NP"])
    assert (inh | exc).all()
    assert (m.loc[inh, "broad_type"] == "Inh").all() and (m.loc[exc, "broad_type"] == "Exc").all()
    assert scala.report["families"]["Pvalb"] == 259
    assert scala.report["broad_types"] == {"Inh": 714, "Exc": 356}


def test_map_features_conversions():
    """Each conversion of the docstring's table on hand-made values."""
    row = {cols[0]: 1.0 for cols, _ in FEATURE_MAP.values()}
    row.update(
        {
            "Afterhyperpolarization (mV)": -12.0,  # trough 12 mV below threshold
            "Max number of APs": 30,  # in the 600 ms step -> 50 Hz
            "Sag ratio": 1.25,  # peak deflection 1.25 x steady -> (peak - ss) / peak = 0.2
            "Latency (ms)": 45.0,
            "Membrane time constant (ms)": 20.0,
            "Input resistance (MOhm)": 200.0,  # 1000 * 20 / 200 = 100 pF
            "AP width (ms)": 0.8,
        }
    )
    f = map_features(pd.DataFrame([row], index=["c"]), "x.csv").iloc[0]
    assert f["ahpamp"] == 12.0 and f["maxfreq"] == pytest.approx(50.0)
    assert f["sag"] == pytest.approx(0.2) and f["latency"] == pytest.approx(0.045)
    assert f["cap"] == pytest.approx(100.0) and f["aphw"] == 0.8 and f["rin"] == 200.0
    with pytest.raises(InputError, match=r"x.csv: missing feature column\(s\) \['Sag ratio'\]"):
        map_features(pd.DataFrame([row]).drop(columns="Sag ratio"), "x.csv")
    with pytest.raises(InputError, match="no Scala mapping for feature"):
        map_features(pd.DataFrame([row]), "x.csv", ["adratio"])


def test_hvg_cell_ids():
    cells = pd.Index(["20180918_sample_1", "20180918_sample_12"])
    out = hvg_cell_ids(pd.Index(["20180918sample12", "20180918sample1"]), cells, "h.csv")
    assert list(out) == ["20180918_sample_12", "20180918_sample_1"]
    with pytest.raises(InputError, match=r"h.csv: cell column '2019sample3' .*\(1 of 2 match\)"):
        hvg_cell_ids(pd.Index(["20180918sample1", "2019sample3"]), cells, "h.csv")


def test_merge_gene_subsets_disagreement():
    a = pd.DataFrame({"c1": [1, 2, 3], "c2": [4, 5, 6], "c3": [0, 0, 1]}, index=["g1", "g2", "g3"])
    b = pd.DataFrame({"c1": [3, 9], "c2": [6, 7], "c4": [1, 1]}, index=["g3", "g4"])
    b.loc["g3", "c2"] = 60  # c2 disagrees on the shared gene g3
    merged, reasons, rep = merge_gene_subsets({"rda": a, "hvg1000": b})
    assert list(merged.index) == ["g1", "g2", "g3", "g4"] and list(merged.columns) == ["c1"]
    assert reasons == {
        "c3": "missing counts (hvg1000 subset)",
        "c4": "missing counts (rda subset)",
        "c2": "counts differ between gene subsets",
    }
    shared = rep["shared_genes_rda_hvg1000"]
    assert shared["largest_difference"] == {"gene": "g3", "cell": "c2", "rda": 6.0, "hvg1000": 60.0}
    kept, reasons, _ = merge_gene_subsets({"rda": a, "hvg1000": b}, on_disagreement="rda")
    assert kept.loc["g3", "c2"] == 6 and kept.loc["g4", "c2"] == 7 and "c2" not in reasons


# --------------------------------------------------------------------------- generic layout


@pytest.fixture(scope="module")
def small(raw_tables) -> dict[str, pd.DataFrame]:
    """40 real Scala cells of 4 mice, 60 genes, in the generic layout's columns."""
    meta, ephys, hvg = raw_tables["meta"], raw_tables["ephys"], raw_tables["hvg"]
    ok = meta[(meta["RNA family"] != "low quality") & meta.index.isin(ephys.index)]
    ok = ok[ok.index.str.replace("_", "").isin(hvg.columns)]
    mice = ok["Mouse"].value_counts().index[:4]
    cells = ok[ok["Mouse"].isin(mice)].index[:40]
    feats = map_features(ephys.loc[cells], "ephys", ["rin", "rmp", "aphw", "maxfreq", "sag"])
    counts = hvg[[c.replace("_", "") for c in cells]].iloc[:60]
    counts.columns = cells
    m = pd.DataFrame(
        {
            "library_size": meta.loc[cells, "Exon reads"],
            "animal": meta.loc[cells, "Mouse"],
            "family": meta.loc[cells, "RNA family"],
            "type": meta.loc[cells, "RNA type"],
        }
    )
    # Library sizes consistent with the counts (the real ones are not, for some cells).
    m["library_size"] = (counts.sum() * 3).astype(int).to_numpy()
    return {"features": feats, "counts": counts, "metadata": m}


KW = {"columns": MetadataColumns(group="animal", family="family")}


def write(tmp_path: Path, small, fmt: str = "csv", **changes) -> dict[str, Path]:
    """Write the three tables (``changes`` replaces some) and return their paths."""
    tables = {**small, **changes}
    feats = tables["features"].rename_axis("cell_id").reset_index()
    meta = tables["metadata"].rename_axis("cell_id").reset_index()
    counts = tables["counts"].rename_axis("gene")
    paths = {}
    if fmt == "parquet":
        paths["features"] = tmp_path / "features.parquet"
        feats.to_parquet(paths["features"])
        paths["metadata"] = tmp_path / "meta.parquet"
        meta.to_parquet(paths["metadata"])
        paths["counts"] = tmp_path / "counts.parquet"
        counts.to_parquet(paths["counts"])  # genes as the index
    else:
        paths["features"] = tmp_path / "features.csv"
        feats.to_csv(paths["features"], index=False)
        paths["metadata"] = tmp_path / "meta.tsv"
        meta.to_csv(paths["metadata"], sep="\t", index=False)
        paths["counts"] = tmp_path / "counts.csv"
        counts.to_csv(paths["counts"])
    return paths


def read(paths, **kw) -> PairedSet:
    return read_paired(paths["features"], paths["counts"], paths["metadata"], **{**KW, **kw})


def check_set(p: PairedSet, small) -> None:
    counts, meta = small["counts"], small["metadata"]
    assert p.report["final_cells"] == len(p.features) == 40 and p.report["groups"] == 4
    assert list(p.expression.columns) == list(p.features.index) == list(p.metadata.index)
    expected = np.log2(counts * 1e6 / meta["library_size"] + 1)
    np.testing.assert_allclose(p.expression.to_numpy(), expected.to_numpy(), rtol=1e-12)
    pd.testing.assert_frame_equal(p.features, small["features"], check_names=False)
    assert list(p.metadata.columns[:5]) == ["group", "family", "type", "broad_type", "library_size"]
    fam = p.metadata["family"].str.lower()
    assert (p.metadata["broad_type"] == fam.map(FAMILY_BROAD_TYPE)).all()


def test_generic_csv(tmp_path, small):
    p = read(write(tmp_path, small))
    check_set(p, small)
    assert p.report["cells"] == {"features": 40, "counts": 40, "metadata": 40}
    assert p.report["excluded"] == {}


def test_generic_parquet(tmp_path, small):
    check_set(read(write(tmp_path, small, "parquet")), small)
    # Parquet counts with the gene as an ordinary first column work too.
    paths = write(tmp_path, small, "parquet")
    small["counts"].rename_axis("gene").reset_index().to_parquet(paths["counts"])
    check_set(read(paths), small)


@pytest.mark.parametrize("where", ["X", "layer", "sparse"])
def test_generic_h5ad(tmp_path, small, where):
    import anndata
    import scipy.sparse as sp

    paths = write(tmp_path, small)
    x = small["counts"].T.to_numpy(dtype=np.float32)
    obs = pd.DataFrame(index=small["counts"].columns)
    var = pd.DataFrame(index=small["counts"].index)
    if where == "layer":  # X holds normalised values, the counts are in a layer
        adata = anndata.AnnData(np.log1p(x), obs=obs, var=var, layers={"counts": x})
    else:
        adata = anndata.AnnData(sp.csr_matrix(x) if where == "sparse" else x, obs=obs, var=var)
    paths["counts"] = tmp_path / "counts.h5ad"
    adata.write_h5ad(paths["counts"])
    check_set(read(paths, layer="counts" if where == "layer" else None), small)
    if where == "layer":  # X is not counts: reading it is refused
        with pytest.raises(InputError, match="counts.h5ad: count not a whole number"):
            read(paths)


def test_generic_exclusions_counted(tmp_path, small):
    feats, counts, meta = small["features"].copy(), small["counts"].copy(), small["metadata"]
    meta = meta.copy()
    cells = meta.index
    meta.loc[cells[0], "family"] = "low quality"
    feats = feats.drop(index=cells[1])  # missing ephys
    feats.loc[cells[2], "sag"] = np.nan  # incomplete ephys
    counts = counts.drop(columns=cells[3])  # missing counts
    meta.loc[cells[4], "library_size"] = counts[cells[4]].sum() - 1  # impossible library
    p = read(write(tmp_path, small, features=feats, counts=counts, metadata=meta))
    assert p.report["excluded"] == {
        "low quality": 1,
        "missing ephys": 1,
        "incomplete ephys": 1,
        "missing counts": 1,
        "library size below counted reads": 1,
    }
    assert p.report["final_cells"] == 35 and p.report["matched"] == 38
    assert p.report["incomplete_features"] == {"sag": 1}
    # A library 10x too large is kept unless a tolerance is asked for.
    meta.loc[cells[5], "library_size"] *= 10
    paths = write(tmp_path, small, features=feats, counts=counts, metadata=meta)
    assert read(paths).report["final_cells"] == 35
    p = read(paths, library_tolerance=3.0)
    assert p.report["excluded"]["library size inconsistent"] == 1
    assert cells[5] not in p.features.index


def test_generic_feature_columns_and_names(tmp_path, small):
    feats = small["features"].rename(columns={"rin": "Rin (MOhm)"})
    paths = write(tmp_path, small, features=feats)
    p = read(paths, feature_columns={"rin": "Rin (MOhm)"}, feature_names=["rin", "sag"])
    assert list(p.features.columns) == ["rin", "sag"]
    np.testing.assert_array_equal(p.features["rin"], small["features"]["rin"])


def test_log2_cpm_library_vectorised():
    counts = np.array([[0, 10], [5, 30]])
    out = log2_cpm_library(counts, np.array([1e6, 2e6]))
    np.testing.assert_allclose(out, np.log2(np.array([[0, 5], [5, 15]]) + 1))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "value, what", [(-3, "negative count -3"), (2.5, "count not a whole number 2.5")]
)
def test_bad_counts(tmp_path, small, value, what):
    counts = small["counts"].astype(float)
    counts.iloc[4, 7] = value
    paths = write(tmp_path, small, counts=counts)
    gene, cell = counts.index[4], counts.columns[7]
    raises_one_line(f"counts.csv: {what} for gene '{gene}' in cell '{cell}'", read, paths)


def test_bad_counts_parquet_and_h5ad(tmp_path, small):
    import anndata

    counts = small["counts"].astype(float)
    counts.iloc[0, 0] = -1
    paths = write(tmp_path, small, "parquet", counts=counts)
    raises_one_line("counts.parquet: negative count", read, paths)
    adata = anndata.AnnData(counts.T.to_numpy(), obs=pd.DataFrame(index=counts.columns))
    adata.write_h5ad(tmp_path / "c.h5ad")
    raises_one_line("c.h5ad: negative count", read_counts, tmp_path / "c.h5ad")


def test_bad_ids_not_matching(tmp_path, small):
    feats = small["features"].copy()
    feats.index = [c.replace("_", "") if i < 30 else c for i, c in enumerate(feats.index)]
    paths = write(tmp_path, small, features=feats)
    raises_one_line(
        r"features.csv: 30 of 40 cell ids are not in .*meta.tsv.*\(10 match\)", read, paths
    )
    counts = small["counts"].copy()
    counts.columns = [c.upper() for c in counts.columns]
    paths = write(tmp_path, small, counts=counts)
    raises_one_line(r"counts.csv: 40 of 40 cell ids are not in .*\(0 match\)", read, paths)
    # All listed in the metadata, but no cell has both ephys and counts.
    half = small["metadata"].index
    paths = write(
        tmp_path,
        small,
        features=small["features"].loc[half[:20]],
        counts=small["counts"][half[20:]],
    )
    raises_one_line(r"counts.csv: none of its 20 cell ids is also in", read, paths)


def test_bad_single_group(tmp_path, small):
    meta = small["metadata"].assign(animal="mouse_A")
    paths = write(tmp_path, small, metadata=meta)
    raises_one_line(r"meta.tsv: column 'animal' has a single group 'mouse_A'", read, paths)
    meta.loc[meta.index[3], "animal"] = np.nan
    paths = write(tmp_path, small, metadata=meta)
    raises_one_line(r"meta.tsv: no group in column 'animal' for cell", read, paths)


@pytest.mark.parametrize("value, shown", [(np.nan, "missing"), (0, "0")])
def test_bad_library_size(tmp_path, small, value, shown):
    meta = small["metadata"].copy()
    meta["library_size"] = meta["library_size"].astype(float)
    meta.loc[meta.index[5], "library_size"] = value
    paths = write(tmp_path, small, metadata=meta)
    cell = meta.index[5]
    raises_one_line(
        f"meta.tsv: library size in column 'library_size' is {shown} for cell '{cell}'",
        read,
        paths,
    )


def test_bad_constant_feature(tmp_path, small):
    feats = small["features"].assign(rmp=-65.0)
    paths = write(tmp_path, small, features=feats)
    raises_one_line(r"features.csv: feature column 'rmp' is constant \(-65\)", read, paths)
    feats = small["features"].rename(columns={"rmp": "Vrest"}).assign(Vrest=-65.0)
    paths = write(tmp_path, small, features=feats)
    raises_one_line(
        r"feature column 'rmp' \(from Vrest\) is constant",
        read,
        paths,
        feature_columns={"rmp": "Vrest"},
    )


def test_bad_h5ad_layer(tmp_path, small):
    import anndata

    adata = anndata.AnnData(
        small["counts"].T.to_numpy(dtype=float), obs=pd.DataFrame(index=small["counts"].columns)
    )
    adata.layers["raw"] = adata.X.copy()
    adata.write_h5ad(tmp_path / "c.h5ad")
    raises_one_line(
        r"c.h5ad: no layer 'counts' \(layers: \['raw'\]\)",
        read_counts,
        tmp_path / "c.h5ad",
        "counts",
    )


def test_bad_metadata_and_feature_columns(tmp_path, small):
    paths = write(tmp_path, small)
    raises_one_line(
        r"meta.tsv: no column 'Mouse'", read, paths, columns=MetadataColumns(group="Mouse")
    )
    raises_one_line(r"features.csv: no id column 'cell'", read, paths, id_column="cell")
    raises_one_line(
        r"features.csv: missing feature column\(s\) \['tau'\]", read, paths, feature_names=["tau"]
    )
    feats = small["features"].astype(object)
    feats.iloc[2, 0] = "n/a?"
    raises_one_line(
        r"features.csv: non-numeric value 'n/a\?' in column 'rin'",
        read,
        write(tmp_path, small, features=feats),
    )


def test_bad_scala_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_scala2021(tmp_path)
    raises_one_line("gene subsets must be among", read_scala2021, tmp_path, subsets=("all",))
