"""Issue #25: no silent ambiguity in user tables (predict's ``--input`` and the paired layout).

A repeated column (pandas would rename the second ``rin.1`` and use the first), float cell
ids (``557261437.0``, or digits lost in float32), a truncated last row (pandas fills it with
NaN) are one-line errors naming the file; pandas' own ``<NA>`` marker is a missing value.
Cells: the realistic per-cell table of the predict tests with the real Allen specimen ids
of ``data/raw/aibs``; the paired layout: the real Scala et al. 2021 feature table.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ephys2expr.errors import InputError
from ephys2expr.features import CORE_FEATURES
from ephys2expr.model.store import save_model_store
from ephys2expr.predict.inputs.cells import check_feature_columns, read_cell_table
from ephys2expr.readers.columns import (
    MISSING_TEXT,
    id_strings,
    numeric_column,
    read_table,
)
from ephys2expr.readers.paired_layout import indexed
from tests.helpers import assert_one_line_exit_2, raises_one_line
from tests.test_predict import _cells
from tests.test_predict_io import _predict, _store


@pytest.fixture(scope="module")
def store():
    return _store()


@pytest.fixture
def work(tmp_path, store):
    save_model_store(store, tmp_path / "model")
    (tmp_path / "params.yaml").write_text("predict: {}\n")  # the defaults
    return tmp_path


@pytest.fixture(scope="module")
def allen_ids(raw_dir) -> np.ndarray:
    """The real Allen specimen ids (int64, ~5.6e8: beyond float32's exact whole numbers)."""
    ids = pd.read_csv(raw_dir / "aibs" / "aibs_aggregated_ephys_v6.csv", usecols=["specimen_id"])
    return ids["specimen_id"].to_numpy()


@pytest.fixture
def cells(allen_ids) -> pd.DataFrame:
    table = _cells(30, 0).reset_index(drop=True)
    table.insert(0, "cell_id", allen_ids[: len(table)])
    return table


def _csv_text(table: pd.DataFrame, sep: str = ",") -> str:
    return table.to_csv(index=False, sep=sep)


# ------------------------------------------------------------------ repeated columns
@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
@pytest.mark.parametrize("column", ["rin", "cell_id"])
def test_a_repeated_column_in_a_text_table_is_an_error_naming_it(work, cells, suffix, column):
    sep = "," if suffix == ".csv" else "\t"
    header, *rows = _csv_text(cells, sep).splitlines()
    i = list(cells.columns).index(column)
    # the same column twice, different values: pandas would silently take the first
    other = cells.iloc[::-1][column].astype(str).tolist()
    lines = [header + sep + column] + [r + sep + v for r, v in zip(rows, other, strict=True)]
    path = work / f"dup{suffix}"
    path.write_text("\n".join(lines) + "\n")
    assert pd.read_csv(path, sep=sep).columns[-1] == f"{column}.1"  # what pandas makes of it
    assert i >= 0
    raises_one_line(f"{path}: column '{column}' appears more than once", read_cell_table, path)
    res = _predict(work, "--input", path, "--output", work / "out" / "p.parquet")
    assert_one_line_exit_2(res, str(path), f"'{column}' appears more than once")
    assert not (work / "out").exists()


def test_a_repeated_column_in_parquet_is_an_error_naming_it(work, cells):
    table = pa.Table.from_pandas(cells, preserve_index=False)
    dup = table.append_column("rin", pa.array(cells["rin"].to_numpy()[::-1]))
    path = work / "dup.parquet"
    pq.write_table(dup, path)
    res = _predict(work, "--input", path, "--output", work / "out" / "p.parquet")
    assert_one_line_exit_2(res, str(path), "'rin' appears more than once")


def test_an_id_column_beside_an_index_of_the_same_name_is_an_error(work, cells):
    """Parquet written from a frame indexed by ``cell_id`` that also has a ``cell_id``
    column: two id columns, which one is meant is ambiguous."""
    other = cells.copy()
    other.index = pd.Index(cells["cell_id"].astype(str)[::-1].to_numpy(), name="cell_id")
    path = work / "two_ids.parquet"
    other.to_parquet(path)
    raises_one_line(f"{path}: column 'cell_id' appears more than once", read_cell_table, path)


def test_the_paired_layout_refuses_a_repeated_feature_column(raw_dir, tmp_path):
    src = raw_dir / "scala2021" / "m1_patchseq_ephys_features.csv"
    header, *rows = src.read_text().splitlines()[:40]
    name = "Input resistance (MOhm)"
    assert name in header.split(",")
    path = tmp_path / "features.csv"
    path.write_text("\n".join([header + "," + name] + [r + ",1" for r in rows]) + "\n")
    raises_one_line(re.escape(f"{path}: column '{name}' appears more than"), read_table, path)
    (tmp_path / "ok.csv").write_text("\n".join([header, *rows]) + "\n")
    assert read_table(tmp_path / "ok.csv").shape == (39, len(header.split(",")))


# ------------------------------------------------------------------ float ids
def test_whole_float64_ids_become_integer_text(work, cells):
    floats = cells.assign(cell_id=cells["cell_id"].astype("float64"))
    path = work / "float_ids.parquet"
    floats.to_parquet(path, index=False)
    table = read_cell_table(path)
    assert list(table.index) == [str(i) for i in cells["cell_id"]]  # not '557261437.0'
    out = work / "out" / "p.parquet"
    res = _predict(work, "--input", path, "--output", out, "--set", "write_h5ad=false")
    assert res.exit_code == 0, res.output
    written = pd.read_parquet(out, columns=["cell_id"])["cell_id"]
    assert set(written) <= {str(i) for i in cells["cell_id"]} and "557261437" in set(written)


@pytest.mark.parametrize(
    ("dtype", "edit", "expected"),
    [
        ("float32", None, "value 557261440.0 (row 1) is beyond 16,777,216"),
        ("float64", 0.5, "value 557261437.5 (row 1) is not a whole number"),
        ("float64", np.nan, "value nan (row 1) is missing (NaN)"),
        ("float64", 2.0**60, "is beyond 9,007,199,254,740,992"),
    ],
)
def test_float_ids_that_cannot_be_exact_are_errors(work, cells, dtype, edit, expected):
    ids = cells["cell_id"].astype("float64")
    if edit is not None:
        ids.iloc[0] = ids.iloc[0] + edit if edit == 0.5 else edit
    path = work / "bad_ids.parquet"
    cells.assign(cell_id=ids.astype(dtype)).to_parquet(path, index=False)
    message = raises_one_line("id column 'cell_id' is float", read_cell_table, path)
    assert expected in message and str(path) in message
    res = _predict(work, "--input", path, "--output", work / "out" / "p.parquet")
    assert_one_line_exit_2(res, str(path), expected)


def test_the_paired_layout_ids_follow_the_same_rule(allen_ids):
    table = pd.DataFrame({"cell_id": allen_ids[:5].astype("float64"), "rin": 100.0})
    assert list(indexed(table, "cell_id", "f.parquet").index) == [str(i) for i in allen_ids[:5]]
    table32 = table.assign(cell_id=table["cell_id"].astype("float32"))
    raises_one_line(
        "f.parquet: id column 'cell_id' is float32", indexed, table32, "cell_id", "f.parquet"
    )
    mixed = pd.Series(["a1", 3.0, 7], dtype=object)
    assert list(id_strings(mixed, "id", "x")) == ["a1", "3", "7"]


# ------------------------------------------------------------------ truncated row
@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_truncated_last_row_is_an_error_naming_the_line(work, cells, suffix):
    sep = "," if suffix == ".csv" else "\t"
    text = _csv_text(cells, sep)
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    cut = text[: len(text) - len(last) // 2 - 1]  # cut off in the middle of the last row
    path = work / f"cut{suffix}"
    path.write_text(cut)
    assert pd.read_csv(path, sep=sep).iloc[-1].isna().any()  # pandas: NaN, silently
    line = len(cells) + 1
    res = _predict(work, "--input", path, "--output", work / "out" / "p.parquet")
    assert_one_line_exit_2(res, str(path), f"line {line} has", "truncated")
    ok = work / f"ok{suffix}"
    ok.write_text(text + "\n")  # a trailing blank line is no row
    assert len(read_cell_table(ok)) == len(cells)


def test_the_paired_layout_refuses_a_truncated_row(raw_dir, tmp_path):
    text = (raw_dir / "scala2021" / "m1_patchseq_ephys_features.csv").read_text()
    lines = text.splitlines()[:25]
    path = tmp_path / "features.csv"
    path.write_text("\n".join(lines[:-1] + [lines[-1][: len(lines[-1]) // 3]]))
    raises_one_line(f"{path}: line 25 has", read_table, path)


# ------------------------------------------------------------------ <NA> is missing
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_pandas_na_marker_in_a_feature_column_is_a_missing_value(work, cells, suffix):
    text = cells.copy()
    text["aphw"] = cells["aphw"].astype("Float64").astype(str)  # pd.NA -> '<NA>'
    assert (text["aphw"] == "<NA>").sum() == 3
    path = work / f"na{suffix}"
    if suffix == ".parquet":
        text.to_parquet(path, index=False)
    else:
        path.write_text(_csv_text(text))
    table = read_cell_table(path)
    values = check_feature_columns(table, CORE_FEATURES, str(path))
    expected = check_feature_columns(read_cell_table(_parquet(work, cells)), CORE_FEATURES, "x")
    pd.testing.assert_frame_equal(values, expected)
    res = _predict(work, "--input", path, "--output", work / "out" / f"p{suffix}.parquet")
    assert res.exit_code == 0, res.output
    # a typo next to it is still named
    text.loc[5, "aphw"] = "0.8ms"
    with pytest.raises(Exception, match="'0.8ms' in column 'aphw'"):
        check_feature_columns(text.set_index("cell_id"), CORE_FEATURES, "t")
    assert numeric_column(pd.DataFrame({"x": ["<NA>", "1.5", "null"]}), "x", "t").isna().sum() == 2


def test_the_missing_markers_are_pandas_own(tmp_path):
    """MISSING_TEXT is written out; it must be exactly the list read_csv documents, and
    read_csv must read every one of them as missing (and a near miss as text)."""
    doc = pd.read_csv.__doc__
    listed = doc[doc.index("By default the following values are interpreted") :]
    listed = listed[: listed.index("keep_default_na")]
    documented = {m.strip() for m in re.findall(r'"([^"]*)"', listed)}
    assert documented == MISSING_TEXT
    path = tmp_path / "markers.csv"
    markers = sorted(MISSING_TEXT - {""}) + ["nil"]
    path.write_text("x\n" + "\n".join(markers) + "\n")
    read = pd.read_csv(path, skip_blank_lines=False)["x"]
    assert read.isna().tolist() == [True] * (len(markers) - 1) + [False]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.to_datetime(["2024-01-01", "2024-01-02"]), "column 'x' holds dates/times"),
        (pd.Series([1 + 2j, 3 + 0j]), "column 'x' is complex"),
        (pd.Series(["1.5", [2.0]], dtype=object), "value [2.0] of type list in column 'x'"),
    ],
)
def test_the_readers_number_column_refuses_dates_complex_numbers_and_objects(values, expected):
    table = pd.DataFrame({"x": values})
    with pytest.raises(InputError, match=re.escape(expected)):
        numeric_column(table, "x", "t.csv")


def _parquet(folder: Path, cells: pd.DataFrame) -> Path:
    path = folder / "plain.parquet"
    cells.to_parquet(path, index=False)
    return path
