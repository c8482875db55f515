"""Predict inputs and outputs under adversarial use (issue #12 cases 3-7, #13 compact output).

Absurd or mistyped inputs are one-line errors; no non-finite value is ever written; all
outputs of a run are checked before the first write and committed together; killed runs
leave nothing that the next run does not remove; outputs never overwrite inputs or the
model store; constant genes are left out by default and put back from the store exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ephys2expr.errors import InputError
from ephys2expr.features import CORE_FEATURES, PLAUSIBLE_RANGE
from ephys2expr.model.estimator import MultiGeneElasticNet
from ephys2expr.model.store import save_model_store, store_from_estimator
from ephys2expr.predict.outputs.h5ad import x_chunk_shape
from ephys2expr.predict.outputs.read import constant_genes, file_metadata, read_predictions
from ephys2expr.predict.outputs.write import write_predictions
from stages.predict import app
from tests.helpers import assert_one_line_exit_2, with_primary
from tests.test_predict import _CENTRE, _TYPE_SD, _cells

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _store(n_genes: int = 60, seed: int = 0):
    """A lasso store over 20 realistic 'types' where about half the genes are constant."""
    rng = np.random.default_rng(seed)
    X = np.abs(_CENTRE + rng.normal(size=(20, 11)) * _TYPE_SD)
    X[:, 9] = 1000 * X[:, 5] / X[:, 0]
    Z = (X - X.mean(0)) / X.std(0)
    B = rng.normal(size=(11, n_genes)) * (rng.random((11, n_genes)) < 0.3)
    B[:, : n_genes // 2] = 0  # no signal: the lasso keeps no feature
    Y = 4 + Z @ B + 0.3 * rng.normal(size=(20, n_genes))
    est = MultiGeneElasticNet(penalty="lasso", alpha=0.3).fit(X, Y)
    genes = pd.Index([f"Gene{i}" for i in range(n_genes)], name="gene")
    per_gene = pd.DataFrame({"cv_r2": np.linspace(-0.2, 0.9, n_genes)}, index=genes)
    features = pd.DataFrame(X, columns=CORE_FEATURES)
    return store_from_estimator(est, features, genes, per_gene, provenance={"test": True})


@pytest.fixture(scope="module")
def store():
    s = _store()
    n_const = len(constant_genes(s))
    assert 0 < n_const < len(s.primary.genes)  # the case #13 is about
    return s


@pytest.fixture
def work(tmp_path, store):
    save_model_store(store, tmp_path / "model")
    cells = _cells(40, 0)
    cells.to_parquet(tmp_path / "cells.parquet")
    (tmp_path / "params.yaml").write_text("predict: {}\n")  # the defaults
    return tmp_path


def _predict(work: Path, *args) -> object:
    base = ["--model-dir", work / "model", "--params", work / "params.yaml"]
    return runner.invoke(app, [str(a) for a in (*base, *args)])


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# ------------------------------------------------------------------ #12 case 3: inputs
@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("rin", 1e308, "column 'rin', cell 500000034: 1e+308 is outside the plausible range"),
        ("rin", 1e39, "1e+39 is outside the plausible range (0, 10000] of input resistance"),
        ("tau", 5000.0, "column 'tau', cell 500000034: 5000 is outside"),  # seconds for ms?
        ("rmp", -0.07, "column 'rmp', cell 500000034: -0.07 is outside"),  # volts for mV
    ],
)
def test_implausible_value_is_one_line_naming_file_column_cell_value(work, column, value, expected):
    cells = pd.read_parquet(work / "cells.parquet")
    cells.iloc[2, cells.columns.get_loc(column)] = value
    cells.to_parquet(work / "bad.parquet")
    res = _predict(work, "--input", work / "bad.parquet", "--output", work / "out" / "p.h5ad")
    assert_one_line_exit_2(res, str(work / "bad.parquet"), expected)
    assert _files(work / "out") == []


def test_all_negative_input_resistance_is_rejected(work):
    cells = pd.read_parquet(work / "cells.parquet")
    cells["rin"] = -cells["rin"]
    cells.to_csv(work / "neg.csv")
    res = _predict(work, "--input", work / "neg.csv", "--output", work / "out" / "p.h5ad")
    assert_one_line_exit_2(
        res, "column 'rin'", "outside the plausible range (0, 10000]", "40 cell(s)"
    )


def test_every_documented_range_lets_the_real_allen_cells_through(raw_dir):
    # the Allen per-cell tables as prepare builds them from the raw data (v10 back-filled)
    from ephys2expr.prepare.run import prepare
    from ephys2expr.prepare.settings import PrepareSettings

    cells = prepare(raw_dir, PrepareSettings()).cells
    assert sorted(cells) == ["aibs_v10", "aibs_v6"]
    for name, table in cells.items():
        for feature, limits in PLAUSIBLE_RANGE.items():
            assert limits.contains(table[feature].to_numpy()).all(), (name, feature)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda c: pd.to_datetime(c["tau"] * 1e6), "feature column 'tau' holds dates/times"),
        (lambda c: pd.to_timedelta(c["tau"], unit="ms"), "feature column 'tau' holds dates/times"),
        (lambda c: c["tau"] > 10, "feature column 'tau' is boolean"),
    ],
)
def test_date_and_boolean_columns_are_rejected_by_dtype(work, make, expected):
    cells = pd.read_parquet(work / "cells.parquet")
    cells["tau"] = make(cells)
    cells.to_parquet(work / "bad.parquet")
    res = _predict(work, "--input", work / "bad.parquet", "--output", work / "out" / "p.h5ad")
    assert_one_line_exit_2(res, expected)


def test_objects_in_a_text_column_are_rejected(store):
    from ephys2expr.predict.inputs.cells import check_feature_columns

    cells = pd.DataFrame({"rin": ["150", True]}, index=["a", "b"])
    with pytest.raises(InputError, match=r"value True of type bool in feature column 'rin'"):
        check_feature_columns(cells, ["rin"], "t.csv")
    ok = check_feature_columns(pd.DataFrame({"rin": ["150", None]}, index=["a", "b"]), ["rin"], "t")
    assert ok["rin"].iloc[0] == 150 and np.isnan(ok["rin"].iloc[1])


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_non_finite_prediction_is_an_error_and_nothing_is_written(tmp_path, store):
    # A finite store whose float32 product overflows: the block check stops the write.
    coef = store.primary.coef.copy()
    coef.iloc[-1, 0] = 1e37
    big = with_primary(store, coef=coef)
    X = _cells(40, 0)[CORE_FEATURES].dropna().to_numpy()[:10]
    meta = pd.DataFrame(index=pd.Index([f"c{i}" for i in range(10)], name="cell_id"))
    with pytest.raises(InputError, match=r"x.csv: cell c0: predicted Gene59 is inf"):
        write_predictions(
            tmp_path / "p.parquet",
            big,
            X,
            meta,
            np.arange(60),
            h5ad_path=tmp_path / "p.h5ad",
            where="x.csv",
        )
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ #12 cases 5 and 7: outputs
@pytest.mark.parametrize("blocked", ["pred.genes.parquet", "pred.parquet", "pred.h5ad"])
def test_directory_at_an_output_path_writes_nothing(work, blocked):
    # before: a directory at pred.genes.parquet left pred.parquet; at pred.parquet an orphan h5ad
    (work / "out" / blocked).mkdir(parents=True)
    res = _predict(
        work, "--input", work / "cells.parquet", "--output", work / "out" / "pred.parquet"
    )
    assert_one_line_exit_2(res, f"{blocked}: is a directory")
    assert _files(work / "out") == [blocked]


def test_second_output_unwritable_leaves_first_unwritten(work):
    (work / "blocker").write_text("a file where a folder should be")
    res = _predict(
        work,
        "--input",
        work / "cells.parquet",
        "--output",
        work / "a" / "one.h5ad",
        "--input",
        work / "cells.parquet",
        "--output",
        work / "blocker" / "two.h5ad",
    )
    assert_one_line_exit_2(res, "two.h5ad", "not a folder")
    assert not (work / "a").exists()


def test_output_equal_to_input_is_refused_and_input_kept(work):
    before = (work / "cells.parquet").read_bytes()
    res = _predict(work, "--input", work / "cells.parquet", "--output", work / "cells.parquet")
    assert_one_line_exit_2(res, "output would overwrite the input")
    assert (work / "cells.parquet").read_bytes() == before
    os.link(work / "cells.parquet", work / "hard.parquet")  # same file under another name
    res = _predict(work, "--input", work / "hard.parquet", "--output", work / "cells.parquet")
    assert_one_line_exit_2(res, "output would overwrite the input")


def test_output_inside_model_store_is_refused_and_store_kept(work):
    store_files = {p.name: p.read_bytes() for p in (work / "model").rglob("*") if p.is_file()}
    for target in ("coef.parquet", "predictions.h5ad"):
        res = _predict(work, "--input", work / "cells.parquet", "--output", work / "model" / target)
        assert_one_line_exit_2(res, "inside the model store")
    after = {p.name: p.read_bytes() for p in (work / "model").rglob("*") if p.is_file()}
    assert after == store_files


@pytest.mark.parametrize("second", ["p.parquet", "p.h5ad"])
def test_same_output_twice_is_refused(work, second):
    # p.parquet and p.h5ad both need p.genes.parquet: a duplicate too
    res = _predict(
        work,
        "--input",
        work / "cells.parquet",
        "--output",
        work / "out" / "p.parquet",
        "--input",
        work / "cells.parquet",
        "--output",
        work / "out" / second,
    )
    assert_one_line_exit_2(res, "this output path is given twice")
    assert _files(work / "out") == []


def test_metrics_path_equal_to_an_output_is_refused(work):
    res = _predict(
        work,
        "--input",
        work / "cells.parquet",
        "--output",
        work / "out" / "p.h5ad",
        "--metrics",
        work / "out" / "p.genes.parquet",
    )
    assert_one_line_exit_2(res, "given twice")


# ------------------------------------------------------------------ #12 case 6: killed runs
def _slow_case(tmp_path: Path) -> list[str]:
    """A run that writes for a few seconds: 3,000 genes x 30,000 cells in chunks of 200."""
    save_model_store(_store(3000, seed=3), tmp_path / "model")
    rng = np.random.default_rng(0)
    cells = _cells(40, 0)
    big = cells.iloc[rng.integers(0, 40, 30_000)].reset_index(drop=True)
    big.index = pd.Index([f"c{i}" for i in range(len(big))], name="cell_id")
    big.to_parquet(tmp_path / "big.parquet")
    return [
        sys.executable,
        "-m",
        "stages.predict",
        "--input",
        str(tmp_path / "big.parquet"),
        "--output",
        str(tmp_path / "out" / "pred.parquet"),
        "--model-dir",
        str(tmp_path / "model"),
        "--set",
        "chunk_cells=200",
        "--set",
        "genes=all",
        "--set",
        "write_h5ad=true",
    ]


def _kill_during_write(cmd: list[str], out: Path, sig: int) -> int:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None:  # until a temporary predictions file has data in it
            temps = [p for p in out.glob(".pred.*.tmp") if p.stat().st_size > 1 << 20]
            if temps:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(sig)
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_leaves_no_temp_that_the_next_run_keeps(tmp_path, sig):
    cmd = _slow_case(tmp_path)
    out = tmp_path / "out"
    code = _kill_during_write(cmd, out, sig)
    left = [p.name for p in out.iterdir()] if out.exists() else []
    assert not any(not n.startswith(".") for n in left)  # nothing committed
    if sig == signal.SIGTERM:
        assert code == 128 + signal.SIGTERM and left == []  # cleaned up on the way out
    else:
        assert code == -signal.SIGKILL and any(n.endswith(".tmp") for n in left)
    # the next run (a quick one into the same folder) removes what a killed run left
    small = tmp_path / "small.parquet"
    _cells(40, 0).iloc[:10].to_parquet(small)
    quick = [*cmd[:3], "--input", str(small), *cmd[5:7], *cmd[7:9]]
    res = subprocess.run(quick, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "pred.genes.parquet",
        "pred.h5ad",
        "pred.parquet",
    ]


def _can_make_immutable(folder: Path) -> bool:
    probe = folder / "probe"
    probe.write_text("x")
    made = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
    subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
    probe.unlink()
    return made


def test_a_rename_that_fails_puts_back_the_earlier_outputs_and_names_its_file(work):
    """An output the next run cannot replace (here an immutable file, ``chattr +i``): the
    files renamed before it are put back, so the folder keeps the earlier run's whole set,
    and the one line names that output, not a hidden temporary file."""
    if not _can_make_immutable(work):
        pytest.skip("chattr +i is not possible here")
    out = work / "out"
    args = ["--input", work / "cells.parquet", "--output", out / "p.h5ad"]
    args += ["--report", out / "r.json"]
    assert _predict(work, *args).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["p.genes.parquet", "p.h5ad", "r.json"]
    # renamed after p.h5ad: p.h5ad is replaced first and must be put back
    locked = out / "p.genes.parquet"
    subprocess.run(["chattr", "+i", str(locked)], check=True)
    try:
        res = _predict(work, *args, "--set", "interval_level=0.8")
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    line = assert_one_line_exit_2(res, f"{locked}: cannot move output into place")
    assert ".tmp" not in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_failed_commit_removes_the_outputs_that_were_new(work, monkeypatch):
    """Where there was no earlier file, putting back means removing the new one."""
    from ephys2expr.predict.outputs.output_set import OutputSet

    out = work / "fresh"
    out.mkdir()
    (out / "b.json").write_text("old")
    real = os.replace

    def replace(src, dst):
        if Path(dst).name == "c.json":
            raise OSError(1, "Operation not permitted", str(src))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(InputError, match=r"c\.json: cannot move output into place"):
        with OutputSet() as outputs:
            for name in ("a.json", "b.json", "c.json"):
                outputs.temp(out / name).write_text("new")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"b.json": "old"}


def test_without_hard_links_a_file_that_cannot_be_put_back_is_named(work, monkeypatch, caplog):
    """Where the file system makes no hard links, the earlier file cannot be kept aside: a
    failed commit says which output holds the failed run's file instead."""
    from ephys2expr.predict.outputs.output_set import OutputSet

    out = work / "nolinks"
    out.mkdir()
    (out / "b.json").write_text("old")
    real = os.replace

    def no_link(*args, **kwargs):
        raise OSError(1, "Operation not permitted")

    def replace(src, dst):
        if Path(dst).name == "c.json":
            raise OSError(1, "Operation not permitted", str(src))
        real(src, dst)

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(InputError, match=r"c\.json: cannot move output into place"):
        with OutputSet() as outputs:
            for name in ("a.json", "b.json", "c.json"):
                outputs.temp(out / name).write_text("new")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"b.json": "new"}
    warned = [r.getMessage() for r in caplog.records if "could not be kept" in r.getMessage()]
    assert warned == [
        f"{Path(os.path.realpath(out)) / 'b.json'}: holds this failed run's file: the earlier "
        "one could not be kept"
    ]


def test_unlocked_temp_files_are_removed_whatever_their_age(work):
    """Issue #25: a temporary file nobody holds locked belongs to a dead run, however fresh
    (the age and pid rules are gone; a live run's locked one stays: tests/test_temps.py)."""
    out = work / "out"
    out.mkdir()
    old, fresh = out / ".p.h5ad.k2j4h6g8.tmp", out / ".p.h5ad.0123abcd-1.a1b2c3d4.tmp"
    old.write_bytes(b"x" * 100)
    fresh.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    res = _predict(work, "--input", work / "cells.parquet", "--output", out / "p.h5ad")
    assert res.exit_code == 0, res.output
    assert not old.exists() and not fresh.exists()


# ------------------------------------------------------------------ #13: compact predictions
def test_varying_default_omits_constant_genes_and_reads_back_exactly(work, store):
    pq = work / "out" / "all.parquet"
    res = _predict(
        work,
        "--input",
        work / "cells.parquet",
        "--output",
        pq,
        "--set",
        "genes=all",
        "--report",
        work / "all.json",
    )
    assert res.exit_code == 0, res.output
    h5 = work / "out" / "vary.h5ad"
    res = _predict(
        work, "--input", work / "cells.parquet", "--output", h5, "--report", work / "vary.json"
    )
    assert res.exit_code == 0, res.output
    const = store.primary.genes.index[constant_genes(store)]
    h = ad.read_h5ad(h5, backed="r")
    assert set(h.var_names) == set(store.primary.genes.index) - set(const)
    meta = file_metadata(h5)
    assert meta["genes"] == "varying" and meta["constant_genes_omitted"] == len(const)
    assert "intercept" in meta["constant_genes_value"]
    # the store alone gives the left-out genes: same float32 values as genes=all wrote
    full, _ = read_predictions(pq)
    back, obs = read_predictions(h5, store=store)
    assert list(back.columns) == list(store.primary.genes.index)
    np.testing.assert_array_equal(back[const].to_numpy(), full[const].to_numpy())
    # varying genes: the float32 product of fewer genes may round 1 ulp differently
    np.testing.assert_allclose(back.to_numpy(), full[back.columns].to_numpy(), rtol=2e-6, atol=1e-6)
    assert (back[const].nunique() == 1).all()
    np.testing.assert_array_equal(
        back[const].iloc[0], store.primary.intercept[constant_genes(store)].astype(np.float32)
    )
    # the share of values below zero counts every gene either way
    a, v = (json.loads((work / f"{n}.json").read_text()) for n in ("all", "vary"))
    assert a["inputs"]["cells"]["values_below_zero"] == v["inputs"]["cells"]["values_below_zero"]
    assert v["model"]["constant_genes"] == len(const)
    assert (obs["species"] == "mouse").all()


def test_h5ad_tiles_and_reading_one_gene_or_one_cell(work, store):
    h5 = work / "out" / "p.h5ad"
    res = _predict(
        work, "--input", work / "cells.parquet", "--output", h5, "--set", "chunk_cells=16"
    )
    assert res.exit_code == 0, res.output
    with h5py.File(h5) as f:
        n, g = f["X"].shape
        assert f["X"].chunks == x_chunk_shape(n, g, 16) and f["X"].compression is None
        assert f["X"].id.get_storage_size() == n * g * 4  # tiles evened out: no padding
    assert x_chunk_shape(200_000, 14_316, 1000) == (1000, 65)  # aligned with the blocks
    assert x_chunk_shape(1019, 14_316, 1000) == (510, 128)
    full, _ = read_predictions(h5)
    gene, cell = full.columns[3], full.index[7]
    one_gene, _ = read_predictions(h5, genes=[gene])
    one_cell, meta = read_predictions(h5, cells=[cell])
    pd.testing.assert_frame_equal(one_gene, full[[gene]])
    pd.testing.assert_frame_equal(one_cell, full.loc[[cell]])
    both, _ = read_predictions(h5, genes=[full.columns[5], gene], cells=[full.index[9], cell])
    pd.testing.assert_frame_equal(both, full.loc[[full.index[9], cell], [full.columns[5], gene]])
    const = store.primary.genes.index[constant_genes(store)][0]
    with pytest.raises(InputError, match=f"no gene {const}"):
        read_predictions(h5, genes=[const])
    assert read_predictions(h5, genes=[const], store=store)[0].shape == (n, 1)


def test_predict_without_model_dir_uses_the_params_type_mean_store(store, tmp_path, monkeypatch):
    """`python -m stages.predict --input x.csv --output x.h5ad` (no --model-dir) predicts with
    data/models/<prepare.type_mean_source>; a missing store's error lists the stores there."""
    monkeypatch.chdir(tmp_path)
    save_model_store(store, tmp_path / "data" / "models" / "rds")
    _cells(40, 0).to_csv(tmp_path / "x.csv")
    res = runner.invoke(app, ["--input", "x.csv", "--output", "x.h5ad"])
    assert res.exit_code == 0, res.output
    assert ad.read_h5ad(tmp_path / "x.h5ad").n_obs > 0
    (tmp_path / "params.yaml").write_text(
        "prepare: {sources: [online_table3, scala2021], type_mean_source: online_table3}\n"
    )
    res = runner.invoke(app, ["--input", "x.csv", "--output", "y.h5ad"])
    assert_one_line_exit_2(
        res, "data/models/online_table3: not a model store", "model stores here: data/models/rds"
    )
    assert not (tmp_path / "y.h5ad").exists()
