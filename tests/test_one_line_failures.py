"""Issue #32 item 2: every failure is one line and exit 2 (or 143 for SIGTERM), nothing left.

The cases of the adversarial run that still ended in a traceback, a crash, a hang or a
misleading message: a full disk or a file-size limit during the ``.h5ad`` write (libhdf5
crashed with SIGSEGV), a SIGTERM swallowed by a finalizer (the output set never aborted),
a CSV with a stray quote, seeds numpy refuses, executor addresses that are not a Dask
scheduler, a deeply nested ``--set`` value, a YAML alias bomb (hung every stage), keys given
twice in params.yaml or model.json, and the messages that named the wrong cause.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ephys2expr.errors import InputError
from ephys2expr.executor import ExecutorSettings, open_executor
from ephys2expr.model.store import load_model_store, save_model_store
from ephys2expr.settings import read_params
from ephys2expr.train.settings import TrainSettings
from stages.predict import app as predict_app
from stages.train import app as train_app
from tests.helpers import assert_one_line_exit_2, raises_one_line
from tests.test_predict import _cells
from tests.test_predict_io import _store

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A store of 2,000 genes and 1,500 realistic cells (the h5ad needs about 6 MB)."""
    d = tmp_path_factory.mktemp("work")
    save_model_store(_store(2000), d / "model")
    cells = _cells(1500, 0)
    cells["cap"] = cells["cap"].clip(upper=2000)  # inside the plausible range
    cells.to_parquet(d / "cells.parquet")
    return d


def _predict_cmd(work: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "stages.predict",
        "--model-dir",
        str(work / "model"),
        "--input",
        str(work / "cells.parquet"),
        "--output",
        str(out),
    ]


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


# ------------------------------------------------------------------ h5ad: EFBIG, ENOSPC
def test_a_file_size_limit_during_the_h5ad_write_is_one_line(work, tmp_path):
    """``ulimit -f``: libhdf5 crashed at exit (139) after a traceback; now one line, exit 2."""
    out = tmp_path / "out" / "pred.h5ad"

    def limit():  # 2 MB: room for the genes table, not for the predictions
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))

    res = subprocess.run(
        _predict_cmd(work, out), cwd=ROOT, capture_output=True, text=True, preexec_fn=limit
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr
    [line] = _error_lines(res.stderr)
    assert line.startswith(f"error: {out}: writing failed (File too large; the predictions need")
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def _small_fs_works() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    script = "mount -t tmpfs -o size=64k tmpfs /mnt"
    res = subprocess.run(["unshare", "--mount", "sh", "-c", script], capture_output=True)
    return res.returncode == 0


@pytest.mark.skipif(not _small_fs_works(), reason="needs root and unshare to mount a small tmpfs")
@pytest.mark.parametrize("size", ["48k", "1m"])
def test_a_full_disk_during_the_h5ad_write_is_one_line(work, tmp_path, size):
    """A 48 kB / 1 MB file system (in a private mount namespace): ENOSPC while anndata or
    HDF5 writes made libhdf5 crash (exit 139) and left the temporaries."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out = mnt / "pred.h5ad"
    cmd = " ".join(_predict_cmd(work, out))
    script = f"mount -t tmpfs -o size={size} tmpfs {mnt} && {cmd}; echo rc=$? >&2; ls -A {mnt}"
    res = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True
    )
    assert "rc=2" in res.stderr, res.stderr[-2000:]
    [line] = _error_lines(res.stderr)
    assert line.startswith(f"error: {out}: writing failed (No space left on device")
    assert res.stdout.strip() == ""  # nothing left on the small file system


# ------------------------------------------------------------------ SIGTERM
SWALLOWED = """
import gc, os, signal, sys
from pathlib import Path
from ephys2expr.io import write_json
from ephys2expr.predict.outputs.output_set import OutputSet
from ephys2expr.temps import stop_on_sigterm

stop_on_sigterm()
out = Path(sys.argv[1])


class Cycle:
    def __del__(self):  # run by the garbage collector: the signal lands inside it
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass


with OutputSet() as outputs:
    write_json({"a": 1}, outputs.temp(out / "a.json"))
    c = Cycle()
    c.self = c
    del c
    gc.collect()
    write_json({"b": 2}, outputs.temp(out / "b.json"))
print("finished", flush=True)
"""


def test_a_sigterm_during_garbage_collection_still_aborts_the_output_set(tmp_path):
    """Python swallows an exception raised in a finalizer (``Exception ignored in ...
    SystemExit: 143``); the run then failed in commit() and abort() never ran (288 MB of
    temporaries left)."""
    out = tmp_path / "out"
    out.mkdir()
    res = subprocess.run(
        [sys.executable, "-c", SWALLOWED, str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert res.returncode == 128 + signal.SIGTERM, res.stderr
    assert "finished" not in res.stdout and "Exception ignored" not in res.stderr
    assert os.listdir(out) == []  # no output, no temporary


def test_a_swallowed_sigterm_is_sent_again_and_stops_the_run():
    """A run that writes nothing for a while after the swallowed signal (training) stops
    at once, not at its next write."""
    code = SWALLOWED.split("with OutputSet()")[0] + (
        "import time\n"
        "c = Cycle()\n"
        "c.self = c\n"
        "del c\n"
        "gc.collect()\n"
        "for _ in range(100):  # 10 s of work that writes nothing\n"
        "    time.sleep(0.1)\n"
        "print('finished', flush=True)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, "."], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 128 + signal.SIGTERM, res.stderr
    assert "finished" not in res.stdout and "Exception ignored" not in res.stderr


def test_a_swallowed_sigterm_never_commits_an_atomic_write(tmp_path):
    """The atomic writers check the remembered signal before renaming into place."""
    code = (
        "import os, signal, sys\n"
        "from ephys2expr.io import write_json\n"
        "from ephys2expr import temps\n"
        "temps.stop_on_sigterm()\n"
        "temps._SIGNALS.append(signal.SIGTERM)  # as a finalizer that swallowed it leaves it\n"
        "write_json({'a': 1}, sys.argv[1])\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "a.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 143, res.stderr
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ tracebacks
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('cell_id,rin,rmp\nc1,"120,-65\nc2,130,-70\n', "has 2 field(s), the header 3"),
        ('cell_id,rin,rmp\nc1,"120,-65\n' + "c2,130,-70\n" * 20_000, "field larger than"),
        ("cell_id,rin,rmp\nc1," + "9" * 200_000 + ",-65\n", "field larger than field limit"),
    ],
    ids=["stray quote", "stray quote, long file", "200 kB field"],
)
def test_a_csv_the_csv_module_refuses_is_one_line(work, tmp_path, text, expected):
    path = tmp_path / "cells.csv"
    path.write_text(text)
    res = runner.invoke(
        predict_app,
        [
            "--model-dir",
            str(work / "model"),
            "--input",
            str(path),
            "--output",
            str(tmp_path / "p.h5ad"),
        ],
    )
    line = assert_one_line_exit_2(res, f"{path}: line ", expected)
    assert "stray quote" in line


@pytest.mark.parametrize("seed", ["-1", "1e30", "4294967296"])
def test_a_seed_numpy_refuses_is_one_line(seed):
    raises_one_line(
        r"params.yaml train.seed: .* is not a whole number from 0 to 2\*\*32 - 1",
        TrainSettings.from_params,
        None,
        [f"seed={seed}"],
    )


@pytest.mark.parametrize(
    "address",
    [
        "file:///etc/passwd",
        "http://localhost:80",
        "tcp://",
        "tcp://host:port",
        "tcp://host:8786/path",
    ],
)
def test_an_executor_address_that_is_not_a_scheduler_is_one_line(address):
    raises_one_line(
        r"params.yaml executor.address: .* is not a Dask scheduler address",
        ExecutorSettings.from_params,
        None,
        ["kind=address", f"address={address}"],
    )


def test_a_server_that_is_not_a_dask_scheduler_is_one_line():
    """An unreachable or foreign server: Dask's handshake read its bytes as a frame
    (``MemoryError`` or ``ValueError: Maximum allowed dimension exceeded``)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.sendall(b"\xff" * 4096)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    settings = ExecutorSettings.from_params(
        None, ["kind=address", f"address=tcp://127.0.0.1:{srv.getsockname()[1]}"]
    )
    try:
        with pytest.raises(InputError, match="cannot reach a Dask scheduler at") as info:
            with open_executor(settings):
                pass
    finally:
        srv.close()
    assert "\n" not in str(info.value)


def test_a_5000_deep_list_in_set_is_one_line(tmp_path):
    deep = "[" * 5000 + "]" * 5000
    for key in ("feature_sets", "alpha"):
        res = runner.invoke(
            train_app,
            [
                "--set",
                f"{key}={deep}",
                "--prepared-dir",
                str(tmp_path),
                "--model-dir",
                str(tmp_path / "m"),
            ],
        )
        line = assert_one_line_exit_2(res, f"--set {key}: not valid YAML (nested deeper than")
        assert len(line) < 200


# ------------------------------------------------------------------ params.yaml, model.json
BOMB = "".join(
    f"{a}: &{a} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
    for p, a in zip([None, *"abcdefgh"], "abcdefghi", strict=True)
)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    """Nine lines expanding to 9**9 strings: every stage hung (3.9 GB at 40 s)."""
    params = tmp_path / "params.yaml"
    params.write_text(BOMB + "train:\n  alpha: 0.05\n")
    res = runner.invoke(
        train_app,
        [
            "--params",
            str(params),
            "--prepared-dir",
            str(tmp_path),
            "--model-dir",
            str(tmp_path / "m"),
        ],
    )
    assert_one_line_exit_2(res, f"{params}: not valid YAML (anchors and aliases", "line 1 column 4")


def test_a_key_twice_in_params_yaml_is_refused(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  alpha: 0.05\n  n_folds: 5\n  alpha: 0.1\n")
    raises_one_line(
        f"{params}: not valid YAML \\(key 'alpha' appears twice .* line 4", read_params, params
    )
    params.write_text("train:\n  alpha: 0.05\ntrain:\n  alpha: 0.1\n")
    raises_one_line("key 'train' appears twice", read_params, params)


def test_a_key_twice_in_model_json_is_refused(work, tmp_path):
    store = tmp_path / "model"
    shutil.copytree(work / "model", store)
    text = (store / "model.json").read_text()
    meta = json.loads(text)
    # the same text with "penalty" given twice: json.loads keeps the last one silently
    twice = text.replace('"penalty":', f'"penalty": {json.dumps(meta["penalty"])}, "penalty":', 1)
    assert json.loads(twice) == meta
    (store / "model.json").write_text(twice)
    raises_one_line(
        f"{store / 'model.json'}: key 'penalty' appears twice in one object",
        load_model_store,
        store,
    )


# ------------------------------------------------------------------ misleading messages
def test_a_missing_model_json_is_named_beside_a_broken_link(work, tmp_path):
    """A sibling that is a symlink loop made the message 'Too many levels of symbolic links'."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "mine").mkdir()  # the store the user meant, without model.json
    os.symlink("loop", models / "loop")  # an unrelated sibling: a link to itself
    shutil.copytree(work / "model", models / "good")
    message = raises_one_line("not a model store", load_model_store, models / "mine")
    assert message.startswith(f"{models / 'mine'}: not a model store (no model.json)")
    assert "symbolic" not in message and str(Path(models / "good")) in message


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_folder_or_fifo_as_input_is_named_for_what_it_is(work, tmp_path, kind):
    path = tmp_path / "cells.csv"
    if kind == "folder":
        path.mkdir()
        expected = "is a folder, expected a table file"
    else:
        os.mkfifo(path)
        expected = "is a named pipe, expected a table file"
    res = runner.invoke(
        predict_app,
        [
            "--model-dir",
            str(work / "model"),
            "--input",
            str(path),
            "--output",
            str(tmp_path / "p.h5ad"),
        ],
    )
    line = assert_one_line_exit_2(res, f"{path}: {expected}")
    assert "no such file" not in line


@pytest.mark.parametrize("marker", ["NA", "None", "null", "NaN"])
def test_ids_that_pandas_reads_as_missing_are_kept_as_text(work, tmp_path, marker):
    """`NA` and `None` are valid ids (a cell named NA); they were reported as empty ids."""
    cells = _cells(30, 0).reset_index(drop=True)
    cells.insert(0, "cell_id", [marker] + [f"c{i}" for i in range(1, len(cells))])
    path = tmp_path / "cells.csv"
    cells.to_csv(path, index=False)
    out = tmp_path / "p.parquet"
    res = runner.invoke(
        predict_app,
        [
            "--model-dir",
            str(work / "model"),
            "--input",
            str(path),
            "--output",
            str(out),
            "--set",
            "write_h5ad=false",
        ],
    )
    assert res.exit_code == 0, res.output

    ids = pd.read_parquet(out, columns=["cell_id"])["cell_id"]
    assert ids.iloc[0] == marker  # the first cell, under its own name


def test_a_blank_id_is_still_an_error(work, tmp_path):
    cells = _cells(30, 0).reset_index(drop=True)
    cells.insert(0, "cell_id", [" "] + [f"c{i}" for i in range(1, len(cells))])
    path = tmp_path / "cells.csv"
    cells.to_csv(path, index=False)
    res = runner.invoke(
        predict_app,
        [
            "--model-dir",
            str(work / "model"),
            "--input",
            str(path),
            "--output",
            str(tmp_path / "p.h5ad"),
        ],
    )
    assert_one_line_exit_2(res, f"{path}: column 'cell_id' has 1 empty id(s), first at row 1")
