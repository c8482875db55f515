"""Issue #32 item 3: likely mistakes are one warning line naming the fix (errors with
``predict.strict``), and ``predict.implausible: drop_value``.

The store is fitted on the real 20 Allen/Tasic type means, the cells are the real Allen v6
cells of ``data/raw/aibs`` (1,058 cells): as they are, predict warns about nothing; with tau
in seconds it names seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ephys2expr.model.estimator import MultiGeneElasticNet
from ephys2expr.model.store import save_model_store, store_from_estimator
from ephys2expr.predict.inputs.mistakes import scale_mistake
from ephys2expr.readers.allen import read_allen_cells
from stages.predict import app as predict_app
from tests.helpers import assert_one_line_exit_2
from tests.train_data import small_real_inputs

runner = CliRunner()


@pytest.fixture(scope="module")
def real(raw_dir, tmp_path_factory) -> Path:
    """A store of the real type means (40 genes) and the real Allen v6 cells as a CSV."""
    features, targets, _ = small_real_inputs(raw_dir, n_variable=30, n_flat=10)
    est = MultiGeneElasticNet(penalty="lasso", alpha=0.05).fit(
        features.to_numpy(), targets.T.to_numpy()
    )
    d = tmp_path_factory.mktemp("mistakes")
    save_model_store(store_from_estimator(est, features, targets.index), d / "model")
    cells, _ = read_allen_cells(raw_dir / "aibs" / "aibs_aggregated_ephys_v6.csv")
    cells.to_csv(d / "v6.csv")
    return d


def _run(real: Path, table: pd.DataFrame | str, tmp_path: Path, caplog, *more: str):
    path = tmp_path / "cells.csv"
    if isinstance(table, str):
        path.write_text(table)
    else:
        table.to_csv(path)
    out = tmp_path / "p.parquet"
    args = [
        "--model-dir",
        str(real / "model"),
        "--input",
        str(path),
        "--output",
        str(out),
        "--set",
        "write_h5ad=false",
        *more,
    ]
    with caplog.at_level(logging.INFO, logger="ephys2expr"):
        res = runner.invoke(predict_app, args)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return res, warnings, path, out


def _v6(real: Path) -> pd.DataFrame:
    return pd.read_csv(real / "v6.csv", index_col="cell_id", dtype={"cell_id": str})


def test_the_real_allen_cells_raise_no_warning(real, tmp_path, caplog):
    res, warnings, _, _ = _run(real, _v6(real), tmp_path, caplog)
    assert res.exit_code == 0, res.output
    assert warnings == []


def test_tau_in_seconds_is_a_warning_naming_seconds(real, tmp_path, caplog):
    cells = _v6(real)
    cells["tau"] = cells["tau"] / 1000  # as ipfx writes it: 0.017 s, inside (0, 1000] ms
    res, warnings, path, out = _run(real, cells, tmp_path, caplog)
    assert res.exit_code == 0, res.output
    [line] = [w for w in warnings if "'tau'" in w]
    assert line.startswith(f"{path}: column 'tau' (membrane time constant (ms)): its median")
    assert "values in s (seconds) rather than ms? multiply them by 1,000" in line
    assert out.exists()
    out.unlink()
    res, _, _, out = _run(real, cells, tmp_path, caplog, "--set", "strict=true")
    assert_one_line_exit_2(res, "column 'tau'", "s (seconds)", "(predict.strict: true)")
    assert not out.exists()


@pytest.mark.parametrize(
    ("feature", "factor", "unit"),
    [
        ("aphw", 1e-3, "s (seconds) rather than ms? multiply them by 1,000"),
        ("rheo", 1e-3, "nA (nanoamperes) rather than pA? multiply them by 1,000"),
        ("cap", 1e-12, "F (farads) rather than pF? multiply them by 1,000,000,000,000"),
        ("rin", 1e3, "kOhm (kiloohms) rather than MOhm? divide them by 1,000"),
        ("rmp", 1e-3, "V (volts) rather than mV? multiply them by 1,000"),
    ],
)
def test_a_feature_in_another_unit_is_named_with_it(real, feature, factor, unit):
    cells = _v6(real)
    train = pd.read_parquet(real / "model" / "train_features.parquet")
    message = scale_mistake(
        feature, float(cells[feature].median() * factor), float(train[feature].median())
    )
    assert message is not None and message.endswith(unit), message


@pytest.mark.parametrize("name", ["rin ", "RIN", "Rin", "r_in", "input_resistance", "Ri"])
def test_a_column_that_almost_names_a_feature_is_a_warning(real, tmp_path, caplog, name):
    cells = _v6(real).rename(columns={"rin": name})
    # (this store holds no training targets, so no set without rin is fitted on demand and
    # the run then fails: the warning came first)
    _, warnings, path, _ = _run(real, cells, tmp_path, caplog)
    [line] = [w for w in warnings if "looks like" in w]
    assert line == (
        f"{path}: column {name!r} is not used, but looks like the feature 'rin' (input "
        "resistance (MOhm)); the cells were predicted without it: rename the column to 'rin' "
        "if it is that"
    )
    res, _, _, _ = _run(real, cells, tmp_path, caplog, "--set", "strict=true")
    assert_one_line_exit_2(res, f"column {name!r} is not used, but looks like the feature 'rin'")


def test_rows_ending_in_a_delimiter_are_read_unshifted_with_a_warning(real, tmp_path, caplog):
    """Every data row one field longer than the header: pandas made the ids the index of
    the first column and shifted every column (ids became rin values)."""
    cells = _v6(real).head(200)
    lines = cells.to_csv().splitlines()
    text = "\n".join([lines[0]] + [ln + "," for ln in lines[1:]]) + "\n"
    res, warnings, path, out = _run(real, text, tmp_path, caplog)
    assert res.exit_code == 0, res.output
    assert any(w.startswith(f"{path}: every data row ends in an extra delimiter") for w in warnings)
    (tmp_path / "plain").mkdir()
    plain, _, _, plain_out = _run(real, cells, tmp_path / "plain", caplog)
    assert plain.exit_code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(plain_out))


def test_extra_fields_with_values_are_an_error(real, tmp_path, caplog):
    lines = _v6(real).head(20).to_csv().splitlines()
    text = "\n".join([lines[0]] + [ln + ",7" for ln in lines[1:]]) + "\n"
    res, _, path, _ = _run(real, text, tmp_path, caplog)
    assert_one_line_exit_2(
        res, f"{path}: line 2 has 22 field(s), the header 21", "would shift every column"
    )


def test_a_feature_no_cell_has_is_a_warning(real, tmp_path, caplog):
    cells = _v6(real)
    cells["ahpamp"] = float("nan")
    _, warnings, path, _ = _run(real, cells.drop(columns=["maxfreq"]), tmp_path, caplog)
    assert (
        f"{path}: the model's feature 'ahpamp' (AHP amplitude, threshold - fast trough (mV)) "
        "has no value in any cell: no cell is predicted with it; add it, or ignore this if it "
        "was not measured" in warnings
    )
    assert any(
        w.startswith(f"{path}: the model's feature 'maxfreq'") and "is not a column" in w
        for w in warnings
    )


def test_unused_columns_are_listed_once(real, tmp_path, caplog):
    cells = _v6(real)
    cells["notes"] = "ok"
    cells["Operator"] = "me"
    res, warnings, path, _ = _run(real, cells, tmp_path, caplog)
    assert res.exit_code == 0, res.output
    assert warnings == [
        f"{path}: 2 column(s) not used (neither a feature of the model store nor metadata): "
        "'notes', 'Operator'"
    ]


def test_implausible_drop_value_predicts_the_rest_of_the_table(real, tmp_path, caplog):
    cells = _v6(real)
    first = cells.index[0]
    cells.loc[first, "rin"] = 50_000.0  # ohm for MOhm in one cell: outside (0, 10000]
    res, _, path, out = _run(real, cells, tmp_path, caplog)
    assert_one_line_exit_2(
        res, f"{path}: column 'rin', cell {first}: 50000 is outside", "--set implausible=drop_value"
    )
    res, warnings, _, out = _run(real, cells, tmp_path, caplog, "--set", "implausible=drop_value")
    assert res.exit_code == 0, res.output
    assert any(
        "column 'rin': 1 value(s) outside the plausible range" in w and first in w for w in warnings
    )
    # the cell is handled as one without rin (this store has no set for it: not predicted),
    # every other cell as before
    pred = pd.read_parquet(out).set_index("cell_id")
    (tmp_path / "before").mkdir()
    _, _, _, before = _run(real, _v6(real), tmp_path / "before", caplog)
    expected = pd.read_parquet(before).set_index("cell_id").drop(index=first)
    pd.testing.assert_frame_equal(pred, expected)


def test_the_paired_layout_reads_rows_ending_in_a_delimiter_unshifted(raw_dir, tmp_path, caplog):
    """The real Scala 2021 feature table with a ',' at the end of every data row."""
    from ephys2expr.readers.columns import read_table

    lines = (raw_dir / "scala2021" / "m1_patchseq_ephys_features.csv").read_text().splitlines()
    (tmp_path / "plain.csv").write_text("\n".join(lines[:40]) + "\n")
    path = tmp_path / "trailing.csv"
    path.write_text("\n".join([lines[0]] + [ln + "," for ln in lines[1:40]]) + "\n")
    with caplog.at_level(logging.WARNING, logger="ephys2expr"):
        table = read_table(path)
    pd.testing.assert_frame_equal(table, read_table(tmp_path / "plain.csv"))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"{path}: every data row ends in an extra ',' (one more field than the header); read "
        "without it, columns as the header names them. Remove the trailing delimiter to "
        "silence this"
    ]


def test_a_recordings_tables_qc_columns_are_read_quietly():
    """The table stages.features writes is read as it is: its per-file and per-feature QC
    columns (``file``, ``rin_sweep``, ``tau_qc`` ...) are not 'unused columns'; a column
    nobody knows still is."""
    from ephys2expr.predict.inputs.mistakes import unused_columns

    cells = pd.DataFrame(
        {
            "rin": [100.0],
            "rin_sweep": ["3 4"],
            "tau_qc": ["no hyperpolarising sweep"],
            "file": ["a.abf"],
            "sampling_khz": [20.0],
            "mystery": [1.0],
            "notafeature_qc": ["x"],
        }
    )
    assert unused_columns(cells, ["rin", "tau"], []) == ["mystery", "notafeature_qc"]
