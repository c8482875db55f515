"""The prepare stage on the real data and on broken copies of it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ephys2expr.features import ALL_FEATURES, CORE_FEATURES
from ephys2expr.prepare.genes import filter_genes
from ephys2expr.readers import read_r
from ephys2expr.readers.allen import read_allen_cells
from ephys2expr.readers.symbols import r_make_names, restore_symbols
from ephys2expr.readers.training import read_entrez_symbols, read_online_table3
from ephys2expr.train.inputs import load_training_inputs, training_paths
from stages.prepare import app
from tests.conftest import write_rds
from tests.helpers import raises_one_line

FEATURES = ",".join(CORE_FEATURES)
runner = CliRunner()


def run_prepare(tmp_path, raw, *extra, features=FEATURES):
    out = tmp_path / "prepared"
    metrics = tmp_path / "prepare.json"
    args = [
        "--params",
        str(tmp_path / "params.yaml"),
        "--set",
        f"features={features}",
        "--report",
        str(tmp_path / "report.json"),
        "--raw-dir",
        str(raw),
        "--out-dir",
        str(out),
        "--metrics",
        str(metrics),
        *extra,
    ]
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "params.yaml").write_text("prepare:\n  type_mean_source: rds\n")
    result = runner.invoke(app, args)
    return result, out, metrics


# --- golden features --------------------------------------------------------------------

GOLDEN = ["rmp", "rin", "apthr", "apamp", "ahpamp", "aphw", "rheo", "cap", "maxfreq", "adratio"]


def test_derived_features_equal_the_labs_own(raw_dir):
    cells, _ = read_allen_cells(raw_dir / "aibs" / "aibs_aggregated_ephys_v6.csv")
    lab = read_r(raw_dir / "aibs" / "aibs_ephys.rda")
    assert len(cells) == len(lab) == 1058
    assert list(cells.index) == [str(s) for s in lab["specimen_id"]]
    for feature in GOLDEN:
        ours = cells[feature].to_numpy()
        theirs = lab[feature].to_numpy(dtype=float)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=feature)
        both = ~np.isnan(theirs)
        assert np.max(np.abs(ours[both] - theirs[both])) < 1e-9, feature


def test_v10_collapses_repeated_reconstructions_and_marks_species(raw_dir):
    cells, report = read_allen_cells(
        raw_dir / "aibs" / "aibs_aggregated_ephys_plus_morpho_v10.csv", absent=("tau",)
    )
    assert report["rows"] == 2335
    assert report["duplicate_rows_collapsed"] == 2
    assert not cells.index.has_duplicates
    assert set(cells["species"]) == {"mouse", "human"}
    assert cells["tau"].isna().all() and cells["cap"].isna().all()
    assert list(cells.columns[-len(ALL_FEATURES) :]) == ALL_FEATURES


# --- gene symbols -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "mangled"),
    [
        ("Nkx2-1", "Nkx2.1"),
        ("0610009B22Rik", "X0610009B22Rik"),
        ("H2-M3", "H2.M3"),
        ("Pvalb", "Pvalb"),
        ("if", "if."),
        (".2abc", "X.2abc"),
    ],
)
def test_r_make_names(symbol, mangled):
    assert r_make_names(symbol) == mangled


def test_restore_symbols_round_trips_the_real_entrez_symbols(raw_dir):
    symbols = list(read_entrez_symbols(raw_dir / "genes" / "entrenz_symbol_s.csv").to_numpy())
    mangled = [r_make_names(s) for s in symbols]
    result = restore_symbols(mangled, symbols)
    changed = sum(m != s for m, s in zip(mangled, symbols, strict=True))
    assert changed > 100  # the table really has hyphenated / digit-initial symbols
    assert result.symbols == symbols
    assert result.n_restored == changed and not result.unresolved


def test_restore_symbols_reports_what_it_cannot_restore():
    result = restore_symbols(["Nkx2.1", "X123Rik", "Pvalb", "Foo.ps"], ["Nkx2-1"])
    assert result.symbols == ["Nkx2-1", "123Rik", "Pvalb", "Foo.ps"]
    assert result.n_restored == 2 and result.unresolved == ["Foo.ps"]


def test_filter_genes_counts_each_step():
    targets = pd.DataFrame(
        [[1.0, 1.0, 1.0], [0.0, 0.1, 0.2], [5.0, 7.0, 9.0], [2.0, 2.5, 2.0]],
        index=["flat", "low", "high", "mid"],
    )
    out, report = filter_genes(targets, min_max_log2=0.5, top_variable=1)
    assert list(out.index) == ["high"]
    assert (
        report.n_genes_in,
        report.n_after_zero_variance,
        report.n_after_min_expression,
        report.n_after_top_variable,
    ) == (4, 3, 2, 1)


# --- Online Table 3 ---------------------------------------------------------------------


def test_online_table3_excerpt(raw_dir):
    entrez = read_entrez_symbols(raw_dir / "genes" / "entrenz_symbol_s.csv")
    table = read_online_table3(raw_dir / "training" / "online_table3_excerpt.csv", entrez)
    assert table.features.shape == (48, 15)
    assert set(table.features.columns) == set(ALL_FEATURES)
    assert table.targets.shape == (20, 48)
    assert "Vsnl1" in table.targets.index  # Entrez 26950
    assert table.types.loc["Gad2-IRES-Cre__L5__inh", "broad_type"] == "Inh"
    assert table.types.loc["Rbp4-Cre_KL100__L4__exc", "cre_line"] == "Rbp4-Cre_KL100"
    # cap converted from nF (tau/ri) to pF
    assert 20 < table.features["cap"].median() < 500


def test_online_table3_generated_layout(tmp_path):
    csv = tmp_path / "ot3.csv"
    csv.write_text(
        ",A-Cre__L1__inh,B-Cre__L5__exc\n"
        "rmp,-70,-65\nri,200,150\ncap,0.05,0.1\n"
        "12,1.5,2.5\n99,0.0,3.0\n"
    )
    entrez = pd.Series(["Gene12"], index=[12])
    table = read_online_table3(csv, entrez)
    assert list(table.features.columns) == ["rmp", "rin", "cap"]
    assert list(table.targets.index) == ["Gene12", "Entrez:99"]
    assert table.features.loc["B-Cre__L5__exc", "cap"] == pytest.approx(100.0)
    assert table.notes["entrez_unmapped"] == 1


# --- the stage end to end on a small real-derived tree ----------------------------------


def test_stage_writes_tables_and_metrics(tmp_path, small_raw):
    result, out, metrics = run_prepare(tmp_path, small_raw)
    assert result.exit_code == 0, result.output
    features, targets, types = load_training_inputs(*training_paths(out).values())
    assert features.shape == (20, 11) and list(features.columns) == CORE_FEATURES
    assert list(targets.columns) == list(features.index) == list(types.index)
    assert "H2-M3" in targets.index and "0610009B22Rik" in targets.index
    assert "Nkx2.1" in targets.index  # Nkx2-1 is not in the Entrez table: kept, reported
    assert set(types["broad_type"]) == {"Exc", "Inh"}
    assert set(types["species"]) == {"mouse"}  # the rds table's cells (SOURCE_SPECIES)
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["types"] == 20 and summary["symbols_restored"] >= 2
    assert summary["genes_in"] >= summary["genes_after_zero_variance"] > 0
    v6 = pd.read_parquet(out / "cells_aibs_v6.parquet")
    assert summary["prediction_inputs"]["aibs_v6"]["cells_missing_features"] == int(
        v6[CORE_FEATURES].isna().any(axis=1).sum()
    )
    v10 = pd.read_parquet(out / "cells_aibs_v10.parquet")
    backfilled = summary["prediction_inputs"]["aibs_v10"]["cells_backfilled_from_aibs_v6"]
    assert backfilled == int(v10["tau"].notna().sum()) > 1000
    shared = v10.index.intersection(v6.index)
    np.testing.assert_allclose(v10.loc[shared, "cap"], v6.loc[shared, "cap"])


def test_stage_output_is_deterministic(tmp_path, small_raw):
    first = run_prepare(tmp_path / "a", small_raw)
    second = run_prepare(tmp_path / "b", small_raw)
    assert first[0].exit_code == second[0].exit_code == 0
    for name in ("train_targets.parquet", "cells_aibs_v10.parquet"):
        assert (first[1] / name).read_bytes() == (second[1] / name).read_bytes()


# --- bad input: one line naming file and column/value, exit != 0, nothing written -------


def assert_clean_failure(result, out, metrics, *needles):
    assert result.exit_code != 0
    message = result.output.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    assert not out.exists() or not any(out.iterdir())
    assert not metrics.exists()


def test_missing_feature_column(tmp_path, small_raw):
    csv = small_raw / "aibs" / "aibs_aggregated_ephys_v6.csv"
    pd.read_csv(csv).drop(columns=["vrest"]).to_csv(csv, index=False)
    result, out, metrics = run_prepare(tmp_path, small_raw)
    assert_clean_failure(result, out, metrics, "aibs_aggregated_ephys_v6.csv", "vrest")


def test_non_numeric_feature_value(tmp_path, small_raw):
    csv = small_raw / "aibs" / "aibs_aggregated_ephys_v6.csv"
    table = pd.read_csv(csv)
    table["ri"] = table["ri"].astype(object)
    table.loc[5, "ri"] = "12O.5"
    table.to_csv(csv, index=False)
    result, out, metrics = run_prepare(tmp_path, small_raw)
    assert_clean_failure(result, out, metrics, "aibs_aggregated_ephys_v6.csv", "'ri'", "12O.5")


def test_non_numeric_training_feature(tmp_path, small_raw, small_training_table):
    table = small_training_table.copy()
    table["tau"] = table["tau"].astype(str)
    table.loc[table.index[2], "tau"] = "fast"
    write_rds(small_raw / "training" / "aibs_cre_expr_ephys.rda", table)
    result, out, metrics = run_prepare(tmp_path, small_raw)
    assert_clean_failure(result, out, metrics, "aibs_cre_expr_ephys.rda", "'tau'", "fast")


def test_duplicate_cell_type(tmp_path, small_raw, small_training_table):
    table = small_training_table.copy()
    table["sample.name"] = table["sample.name"].astype(str)
    table.loc[table.index[1], "sample.name"] = table["sample.name"].iloc[0]
    write_rds(small_raw / "training" / "aibs_cre_expr_ephys.rda", table)
    result, out, metrics = run_prepare(tmp_path, small_raw)
    assert_clean_failure(
        result,
        out,
        metrics,
        "aibs_cre_expr_ephys.rda",
        "duplicate cell type",
        str(table["sample.name"].iloc[0]),
    )


def test_duplicate_cell_id_with_different_ephys(tmp_path, small_raw):
    csv = small_raw / "aibs" / "aibs_aggregated_ephys_v6.csv"
    table = pd.read_csv(csv)
    table.loc[1, "specimen_id"] = table.loc[0, "specimen_id"]
    table.to_csv(csv, index=False)
    result, out, metrics = run_prepare(tmp_path, small_raw)
    assert_clean_failure(
        result, out, metrics, "aibs_aggregated_ephys_v6.csv", str(table.loc[0, "specimen_id"])
    )


def test_no_gene_left(tmp_path, small_raw):
    result, out, metrics = run_prepare(tmp_path, small_raw, "--set", "min_max_log2=1000")
    assert_clean_failure(result, out, metrics, "no gene left", "min_max_log2=1000")


@pytest.mark.parametrize(
    "target",
    [
        "training/aibs_cre_expr_ephys.rda",
        "aibs/aibs_aggregated_ephys_v6.csv",
        "genes/tasic_gene_names.rda",
    ],
)
def test_truncated_input(tmp_path, small_raw, target):
    path = small_raw / target
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] if target.endswith(".rda") else b"")
    result, out, metrics = run_prepare(tmp_path, small_raw)
    assert_clean_failure(result, out, metrics, target.split("/")[-1])


def test_unknown_feature_in_params(tmp_path, small_raw):
    result, out, metrics = run_prepare(tmp_path, small_raw, features="rin,rmp,spikiness")
    assert_clean_failure(result, out, metrics, "prepare.features", "spikiness")


def test_feature_absent_from_training_table(tmp_path, small_raw):
    result, out, metrics = run_prepare(tmp_path, small_raw, features="rin,sag")
    assert_clean_failure(result, out, metrics, "sag", "not in the training table")


# --- settings: params.yaml prepare and --set --------------------------------------------


def test_settings_accept_a_list_or_a_comma_string():
    from ephys2expr.prepare.settings import PrepareSettings

    as_list = PrepareSettings.from_params({"prepare": {"features": ["rin", "rmp"]}})
    as_text = PrepareSettings.from_params({"prepare": {"features": "rin, rmp"}})
    assert as_list.features == as_text.features == ["rin", "rmp"]
    assert PrepareSettings.from_params(None).features == CORE_FEATURES


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (["features=rin,spikiness"], ["prepare.features", "spikiness"]),
        (["features=rin,rin"], ["prepare.features", "twice", "rin"]),
        (["features="], ["prepare.features", "empty"]),
        (["type_mean_source=csv"], ["prepare.type_mean_source", "csv"]),
        (
            ["sources=online_table3,scala2021", "type_mean_source=online_table3", "online_table3="],
            ["prepare.online_table3"],
        ),
        (
            ["type_mean_source=online_table3"],
            ["prepare.type_mean_source", "not in prepare.sources"],
        ),
        (["sources=rds,scala2021,mine"], ["prepare.sources", "unknown source 'mine'"]),
        (["sources=rds,rds,scala2021"], ["prepare.sources", "listed twice"]),
        (["per_cell_source=rds"], ["prepare.per_cell_source", "a per-cell source"]),
        (["top_variable=-1"], ["prepare.top_variable"]),
        (["top_variable=2.5"], ["prepare.top_variable", "whole number"]),
        (["min_max_log2=high"], ["prepare.min_max_log2", "not a number"]),
        (["n_genes=5"], ["prepare.n_genes", "unknown setting"]),
        (["features"], ["KEY=VALUE"]),
    ],
)
def test_settings_errors_name_the_key(overrides, needles):
    from ephys2expr.errors import InputError
    from ephys2expr.prepare.settings import PrepareSettings

    with pytest.raises(InputError) as info:
        PrepareSettings.from_params({"prepare": {}}, overrides)
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_set_overrides_params_file(tmp_path, small_raw):
    (tmp_path / "params.yaml").write_text(
        "prepare:\n  features: rin,rmp,apthr\n  top_variable: 7\n"
    )
    out, metrics = tmp_path / "prepared", tmp_path / "prepare.json"
    args = ["--params", str(tmp_path / "params.yaml"), "--raw-dir", str(small_raw)]
    args += ["--out-dir", str(out), "--metrics", str(metrics)]
    args += ["--report", str(tmp_path / "report.json"), "--set", "top_variable=5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert list(pd.read_parquet(out / "train_features.parquet").columns) == ["rin", "rmp", "apthr"]
    assert len(pd.read_parquet(out / "train_targets.parquet")) == 5
    assert json.loads(metrics.read_text()) == {"genes": 5}
    assert json.loads((tmp_path / "report.json").read_text())["settings"]["top_variable"] == 5


def test_bad_setting_writes_nothing(tmp_path, small_raw):
    result, out, metrics = run_prepare(tmp_path, small_raw, "--set", "top_variable=-3")
    assert_clean_failure(result, out, metrics, "prepare.top_variable")


# --- read_r: RData and RDS alike, one clear error per failure ----------------------------


def test_read_r_reads_rdata_and_rds_whatever_the_suffix(tmp_path):
    import warnings

    import rdata

    from ephys2expr.errors import InputError

    frame = pd.DataFrame({"a": [1.0, 2.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rdata.write_rda(tmp_path / "two.rds", {"x": frame, "y": frame})  # RData, wrong suffix
    write_rds(tmp_path / "one.rda", frame)  # RDS, wrong suffix
    assert read_r(tmp_path / "one.rda").equals(frame)
    assert read_r(tmp_path / "two.rds", "y").equals(frame)
    with pytest.raises(InputError, match="two.rds.*say which"):
        read_r(tmp_path / "two.rds")
    with pytest.raises(InputError, match="two.rds.*no R object 'z'"):
        read_r(tmp_path / "two.rds", "z")
    (tmp_path / "bad.rda").write_text("not R")
    with pytest.raises(InputError, match="bad.rda: unreadable"):
        read_r(tmp_path / "bad.rda")
    with pytest.raises(FileNotFoundError):
        read_r(tmp_path / "missing.rda")


# --- paired sources (Patch-seq cells): the generic layout through the stage -------------

from tests.test_paired import raw_tables, scala_dir, small, write  # noqa: E402, F401

PAIRED_FEATURES = ["rin", "rmp", "aphw", "maxfreq", "sag"]  # those of the `small` cells


def run_paired(tmp_path, raw_dir, files, *extra):
    """The stage with ``--source mine`` on the generic layout's three files."""
    params = {
        "prepare": {
            "paired": {
                "mine": {
                    **{k: str(v) for k, v in files.items()},
                    "columns": {"group": "animal", "family": "family"},  # the rest: defaults
                }
            },
            "paired_features": PAIRED_FEATURES,
        }
    }
    (tmp_path / "params.yaml").write_text(json.dumps(params))  # JSON is YAML
    out, metrics = tmp_path / "prepared", tmp_path / "prepare.json"
    args = [
        "--params",
        str(tmp_path / "params.yaml"),
        "--source",
        "mine",
        "--raw-dir",
        str(raw_dir),
        "--out-dir",
        str(out),
        "--metrics",
        str(metrics),
        "--report",
        str(tmp_path / "report.json"),
        *extra,
    ]
    return runner.invoke(app, args), out, metrics


def test_stage_prepares_paired_cells(tmp_path, raw_dir, small):  # noqa: F811
    result, out, metrics = run_paired(tmp_path, raw_dir, write(tmp_path, small))
    assert result.exit_code == 0, result.output
    features, targets, types = load_training_inputs(*training_paths(out).values())
    assert features.shape == (40, 5) and list(features.columns) == PAIRED_FEATURES
    assert list(targets.columns) == list(features.index) == list(types.index)
    assert list(types.columns[:5]) == ["broad_type", "weight", "group", "family", "type"]
    assert (types["weight"] == 1.0).all() and types["group"].nunique() == 4
    assert set(types["species"]) == {"unknown"}  # your own cells: no species column given
    detected = (small["counts"] > 0).mean(axis=1)
    assert list(targets.index) == list(small["counts"].index[(detected >= 0.1).to_numpy()])
    expected = np.log2(small["counts"] * 1e6 / small["metadata"]["library_size"] + 1)
    np.testing.assert_allclose(targets, expected.loc[targets.index], rtol=1e-12)
    assert json.loads(metrics.read_text()) == {"genes": len(targets), "cells": 40}
    assert (out / "cells_aibs_v6.parquet").is_file()  # a source's folder serves predict too


def _bad_counts(tables, value):
    counts = tables["counts"].astype(float)
    counts.iloc[4, 7] = value
    return {"counts": counts}


def _bad_ids(tables):
    feats = tables["features"].copy()
    feats.index = [c.replace("_", "") if i < 30 else c for i, c in enumerate(feats.index)]
    return {"features": feats}


def _library(tables, value):
    meta = tables["metadata"].copy()
    meta["library_size"] = meta["library_size"].astype(float)
    meta.loc[meta.index[5], "library_size"] = value
    return {"metadata": meta}


BAD_PAIRED = {
    "negative count": (lambda s: _bad_counts(s, -3), ["counts.csv", "negative count -3"]),
    "fractional count": (lambda s: _bad_counts(s, 2.5), ["counts.csv", "not a whole number"]),
    "ids not matching": (_bad_ids, ["features.csv", "30 of 40 cell ids", "(10 match)"]),
    "single group": (
        lambda s: {"metadata": s["metadata"].assign(animal="mouse_A")},
        ["meta.tsv", "column 'animal' has a single group"],
    ),
    "library size missing": (lambda s: _library(s, np.nan), ["meta.tsv", "size", "missing"]),
    "library size zero": (lambda s: _library(s, 0), ["meta.tsv", "library_size", "is 0"]),
    "constant feature": (
        lambda s: {"features": s["features"].assign(rmp=-65.0)},
        ["features.csv", "feature column 'rmp' is constant"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PAIRED))
def test_stage_bad_paired_input_is_one_line_exit_2_nothing_written(tmp_path, raw_dir, small, case):  # noqa: F811, E501
    change, needles = BAD_PAIRED[case]
    result, out, metrics = run_paired(tmp_path, raw_dir, write(tmp_path, small, **change(small)))
    assert result.exit_code == 2
    assert_clean_failure(result, out, metrics, *needles)


def test_paired_settings_are_checked():
    from ephys2expr.errors import InputError
    from ephys2expr.prepare.settings import PAIRED_COLUMNS, PrepareSettings

    files = {"features": "f.csv", "counts": "c.h5ad", "metadata": "m.tsv"}
    ok = PrepareSettings.from_params(
        {
            "prepare": {
                "sources": ["rds", "scala2021", "a", "b"],
                "per_cell_source": "b",
                "paired": {
                    "a": files,
                    "b": {**files, "columns": {"group": "mouse"}, "layer": "raw"},
                },
            }
        }
    )
    assert [ok.kind(s) for s in ok.sources] == ["type_mean", "scala2021", "paired", "paired"]
    assert ok.paired["a"]["columns"] == PAIRED_COLUMNS and ok.paired["a"]["layer"] == ""
    assert ok.paired["b"]["columns"] == {**PAIRED_COLUMNS, "group": "mouse"}
    assert ok.source_settings("b") == {
        "paired_features": ok.paired_features,
        "min_detected": ok.min_detected,
        "paired": {"b": ok.paired["b"]},
    }
    assert "paired" not in ok.source_settings("scala2021")  # another source's files: not its
    for paired, match in (
        ({"a": {**files, "counts": ""}}, r"prepare.paired.a.counts: no file given"),
        ({"a": {"features": "f.csv"}}, r"prepare.paired.a.counts: no file given"),
        ({"a": {**files, "colums": {}}}, r"prepare.paired.a.colums: unknown key"),
        ({"a": {**files, "columns": {"animal": "x"}}}, r"prepare.paired.a.columns.animal: unknown"),
        ({"a": {**files, "columns": {"id": ""}}}, r"prepare.paired.a.columns.id: no column name"),
        ({"rds": files}, r"prepare.paired.rds: not a usable source name"),
        ({"a b": files}, r"prepare.paired.a b: not a usable source name"),
    ):
        raises_one_line(match, PrepareSettings.from_params, {"prepare": {"paired": paired}})
    with pytest.raises(InputError, match="prepare.paired_features: unknown feature"):
        PrepareSettings.from_params({"prepare": {"paired_features": ["adratio2"]}})
    with pytest.raises(InputError, match="prepare.min_detected"):
        PrepareSettings.from_params({"prepare": {"min_detected": 1.5}})
