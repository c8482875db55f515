"""Expected errors are one line `error: <path>: ...` with exit code 2; bugs keep their traceback."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from ephys2expr.cli import friendly_errors
from ephys2expr.errors import InputError
from ephys2expr.features import CORE_FEATURES
from ephys2expr.model.estimator import MultiGeneElasticNet
from ephys2expr.model.store import save_model_store, store_from_estimator
from tests.train_data import small_real_inputs

ROOT = Path(__file__).resolve().parent.parent


def _app(raiser) -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.command()
    @friendly_errors
    def main(path: str = "x") -> None:
        raiser(path)

    return app


def _raise(exc):
    def raiser(_):
        raise exc

    return raiser


_OS_ERRORS = {
    "permission": (
        PermissionError(errno.EACCES, "Permission denied", "/ro/pred.parquet"),
        "error: /ro/pred.parquet: Permission denied",
    ),
    "is a directory": (
        IsADirectoryError(errno.EISDIR, "Is a directory", "out/pred.parquet"),
        "error: out/pred.parquet: Is a directory",
    ),
    "not a directory": (
        NotADirectoryError(errno.ENOTDIR, "Not a directory", "f.csv/x"),
        "error: f.csv/x: Not a directory",
    ),
    "exists": (
        FileExistsError(errno.EEXIST, "File exists", "data/model"),
        "error: data/model: File exists",
    ),
    "missing": (
        FileNotFoundError(errno.ENOENT, "No such file or directory", "in.csv"),
        "error: in.csv: No such file or directory",
    ),
    "disk full": (
        OSError(errno.ENOSPC, "No space left on device", "big.parquet"),
        "error: big.parquet: No space left on device",
    ),
    "read-only fs": (
        OSError(errno.EROFS, "Read-only file system", "/mnt/out"),
        "error: /mnt/out: Read-only file system",
    ),
    "disk full, no path": (
        OSError(errno.ENOSPC, "No space left on device"),
        "error: No space left on device ([Errno 28] No space left on device)",
    ),
    "rename across devices": (
        OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b"),
        "error: a -> b: Invalid cross-device link",
    ),
    "multi-line input error": (
        InputError("store.json: bad\n  second line\n"),
        "error: store.json: bad | second line",
    ),
}


@pytest.mark.parametrize("case", list(_OS_ERRORS))
def test_expected_errors_are_one_line_and_exit_2(case):
    exc, line = _OS_ERRORS[case]
    res = CliRunner().invoke(_app(_raise(exc)), [])
    assert res.exit_code == 2
    assert res.output.splitlines() == [line]


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("bug"),
        KeyError("x"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset"),
    ],
)
def test_unexpected_errors_keep_their_traceback(exc):
    res = CliRunner().invoke(_app(_raise(exc)), [])
    assert res.exit_code == 1 and res.exception is exc


def _read_csv(path):
    pd.read_csv(path)


def _read_parquet(path):
    pd.read_parquet(path)


def _open_dir_for_writing(path):
    Path(path).mkdir()
    with open(path, "w"):
        pass


@pytest.mark.parametrize(
    ("content", "reader", "expected"),
    [
        (b"\xff\xfe\x00a,b\n1,2\n", _read_csv, "unreadable (UnicodeDecodeError"),
        (b"a,b\n1,2\n", _read_parquet, "unreadable (ArrowInvalid"),
        (None, _open_dir_for_writing, "Is a directory"),
    ],
)
def test_real_data_and_os_errors_name_the_file(tmp_path, content, reader, expected):
    path = tmp_path / "cells.dat"
    if content is not None:
        path.write_bytes(content)
    res = CliRunner().invoke(_app(reader), ["--path", str(path)])
    assert res.exit_code == 2, res.output
    [line] = res.output.splitlines()
    assert line.startswith(f"error: {path}: ") and expected in line


# --------------------------------------------------------------- through the real CLIs


@pytest.fixture(scope="module")
def real(raw_dir, tmp_path_factory):
    """A store of the real 20-type table and its 20 types as cells to predict."""
    features, targets, _ = small_real_inputs(raw_dir, n_variable=30, n_flat=10)
    est = MultiGeneElasticNet(penalty="lasso", alpha=0.05).fit(
        features.to_numpy(), targets.T.to_numpy()
    )
    d = tmp_path_factory.mktemp("real")
    save_model_store(store_from_estimator(est, features, targets.index), d / "model")
    cells = features.reset_index(drop=True)
    cells.insert(0, "cell_id", [f"c{i}" for i in range(len(cells))])
    cells.to_csv(d / "cells.csv", index=False)
    return d


def _predict(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "stages.predict", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )


def _nan_scaler(store: Path):
    meta = json.loads((store / "model.json").read_text())
    meta["scaler_mean"][5] = float("nan")
    (store / "model.json").write_text(json.dumps(meta))
    return "model.json: scaler_mean[5] is nan, expected a finite number"


def _schema_1(store: Path):
    meta = json.loads((store / "model.json").read_text())
    meta["schema_version"] = 1
    (store / "model.json").write_text(json.dumps(meta))
    return "model.json: schema_version 1 (written file by file"


def _mixed(store: Path):
    coef = pd.read_parquet(store / "coef.parquet")
    (coef * 2).to_parquet(store / "coef.parquet")  # as if a second training replaced it
    return "coef.parquet does not match the md5 recorded in model.json"


def _deep(store: Path):
    (store / "model.json").write_text("[" * 200_000 + "]" * 200_000)
    return "model.json: JSON nested too deeply"


@pytest.mark.parametrize("breaker", [_nan_scaler, _schema_1, _mixed, _deep])
def test_predict_with_a_broken_store_is_one_line_exit_2(real, tmp_path, breaker):
    store = tmp_path / "model"
    shutil.copytree(real / "model", store)
    expected = breaker(store)
    out = tmp_path / "pred.parquet"
    res = _predict(
        "--model-dir", store, "--input", real / "cells.csv", "--output", out, cwd=tmp_path
    )
    assert res.returncode == 2, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    assert errors[0].startswith(f"error: {store}") and expected in errors[0], errors[0]
    assert not out.exists()


def test_predict_into_a_directory_is_one_line_exit_2(real, tmp_path):
    out = tmp_path / "pred.parquet"
    out.mkdir()
    res = _predict(
        "--model-dir", real / "model", "--input", real / "cells.csv", "--output", out, cwd=tmp_path
    )
    assert res.returncode == 2, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in res.stderr and str(out) in errors[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_predict_into_a_read_only_folder_is_one_line_exit_2(real, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        res = _predict(
            "--model-dir",
            real / "model",
            "--input",
            real / "cells.csv",
            "--output",
            ro / "pred.parquet",
            cwd=tmp_path,
        )
    finally:
        ro.chmod(0o755)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert str(ro) in [ln for ln in res.stderr.splitlines() if ln.startswith("error:")][0]


def test_train_refuses_a_model_dir_that_is_not_a_store_before_training(tmp_path):
    from stages.train import app

    (tmp_path / "model").write_text("not a folder")
    res = CliRunner().invoke(
        app, ["--model-dir", str(tmp_path / "model"), "--prepared-dir", str(tmp_path / "none")]
    )
    assert res.exit_code == 2
    assert res.output.splitlines()[-1] == (
        f"error: {tmp_path / 'model'}: exists and is not a folder; cannot write a model store"
    )


def test_online_table3_with_a_duplicated_type_column_names_it(raw_dir, tmp_path):
    """pandas would rename the copy `...__inh.1` and the class would read 'Inh.1'."""
    from stages.prepare import app

    raw = tmp_path / "raw"
    for sub in ("aibs", "genes"):
        shutil.copytree(raw_dir / sub, raw / sub)
    table = (raw_dir / "training" / "online_table3_excerpt.csv").read_text().splitlines()
    header = table[0].split(",")
    dup = header[3]
    rows = [",".join([*cells, cells[3]]) for cells in (ln.split(",") for ln in table)]
    (raw / "training").mkdir()
    csv = raw / "training" / "ot3.csv"
    csv.write_text("\n".join(rows) + "\n")
    (tmp_path / "params.yaml").write_text(
        f"prepare:\n  sources: [online_table3, scala2021]\n  type_mean_source: online_table3\n"
        f"  online_table3: {csv}\n"
    )
    res = CliRunner().invoke(
        app,
        [
            "--params",
            str(tmp_path / "params.yaml"),
            "--set",
            f"features={','.join(CORE_FEATURES)}",
            "--raw-dir",
            str(raw),
            "--out-dir",
            str(tmp_path / "prepared"),
            "--metrics",
            str(tmp_path / "m.json"),
            "--report",
            str(tmp_path / "r.json"),
        ],
    )
    assert res.exit_code == 2, res.output
    assert res.output.splitlines()[-1] == f"error: {csv}: duplicate cell type column {dup!r}"
    assert "Inh.1" not in res.output and not (tmp_path / "prepared").exists()
