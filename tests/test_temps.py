"""Issue #25: temporary files of live runs are never touched, those of dead runs always go,
train and predict leave none on any exit path (SIGTERM included), a full disk is one line.

Live/dead is decided by a lock the writing process holds (``ephys2expr.temps``), not by a
pid: a predict in another PID namespace once deleted a live run's 1.5 GB temporary file,
and a SIGTERM'd train left ``plots/train/<source>/.per_gene.csv.*.tmp`` behind.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from ephys2expr.io import save_figure, write_csv, write_json, write_parquet  # noqa: E402
from ephys2expr.model.store import load_model_store, save_model_store  # noqa: E402
from ephys2expr.temps import Temp, remove_dead_temps  # noqa: E402
from stages.predict import app as predict_app  # noqa: E402
from stages.train import app as train_app  # noqa: E402
from tests.helpers import assert_one_line_exit_2, raises_one_line  # noqa: E402
from tests.test_predict import _cells  # noqa: E402
from tests.test_predict_io import _store  # noqa: E402
from tests.train_data import write_small_prepared  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

# A run that holds one temporary (file or folder) for destination argv[2] in folder argv[1]
# and lives until its stdin closes or it is killed.
HOLDER = (
    "import sys\n"
    "from ephys2expr.temps import Temp\n"
    "t = Temp.create(sys.argv[1], sys.argv[2], directory=sys.argv[3] == 'dir')\n"
    "print(t.path, flush=True)\n"
    "sys.stdin.read()\n"
)


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    res = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True
    )
    return res.returncode == 0


def _hold(folder: Path, name: str, kind: str = "file", namespace: bool = False):
    """Spawn a live run holding a temporary; return (process, temporary path)."""
    cmd = [sys.executable, "-c", HOLDER, str(folder), name, kind]
    if namespace:  # its own PID namespace: its pid means nothing here
        cmd = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", *cmd]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    line = proc.stdout.readline().strip()
    assert line, "the holder did not start"
    return proc, Path(line)


def _kill(proc) -> None:
    """End the holder without any cleanup of its own: SIGKILL; in another PID namespace
    its stdin is closed instead (the holder then exits without removing its temporary,
    and ``unshare`` returns only once it has: no waiting on time)."""
    if proc.args[0] == "unshare":
        proc.stdin.close()
    else:
        proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def store():
    return _store()


@pytest.mark.parametrize(
    "namespace",
    [
        False,
        pytest.param(
            True, marks=pytest.mark.skipif(not _can_unshare(), reason="unshare not permitted")
        ),
    ],
    ids=["same-namespace", "other-pid-namespace"],
)
def test_a_live_runs_temp_survives_a_predict_and_a_dead_runs_goes(tmp_path, store, namespace):
    save_model_store(store, tmp_path / "model")
    out = tmp_path / "out"
    out.mkdir()
    _cells(40, 0).to_parquet(tmp_path / "cells.parquet")
    proc, live = _hold(out, "pred.parquet", namespace=namespace)
    live.write_bytes(b"x" * 4096)  # the live run's data so far
    cmd = [
        "--input",
        tmp_path / "cells.parquet",
        "--output",
        out / "pred.parquet",
        "--model-dir",
        tmp_path / "model",
        "--set",
        "write_h5ad=false",
    ]
    try:
        assert remove_dead_temps(out, ["pred.parquet"]) == []
        res = runner.invoke(predict_app, [str(c) for c in cmd])
        assert res.exit_code == 0, res.output
        assert live.read_bytes() == b"x" * 4096  # untouched by the other run
        assert (out / "pred.parquet").is_file()
    finally:
        _kill(proc)  # no chance to clean up; the lock goes with the process
    assert live.exists()
    res = runner.invoke(predict_app, [str(c) for c in cmd])
    assert res.exit_code == 0, res.output
    assert not live.exists()
    assert sorted(p.name for p in out.iterdir()) == ["pred.genes.parquet", "pred.parquet"]


def test_only_temporaries_of_the_destination_are_judged(tmp_path):
    """Unlocked temporaries of older versions (pid-tagged or not) of the destination go;
    files that are not its temporaries, and a FIFO under a temp name, stay."""
    names = [
        ".p.h5ad.0123abcd-999999.k2j4h6g8.tmp",
        ".p.h5ad.a1b2c3d4.tmp",
        "..p.h5ad.a1b2.tmp.x9y8.tmp",
        ".p.h5ad.new-abc",
    ]
    for n in names[:3]:
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / names[3]).mkdir()
    keep = [".other.csv.a1b2c3d4.tmp", "p.h5ad", ".p.h5ad.swp"]
    for n in keep:
        (tmp_path / n).write_bytes(b"x")
    os.mkfifo(tmp_path / ".p.h5ad.fifo1234.tmp")
    removed = remove_dead_temps(tmp_path, ["p.h5ad"])
    assert sorted(p.name for p in removed) == sorted(names)
    assert sorted(os.listdir(tmp_path)) == sorted([*keep, ".p.h5ad.fifo1234.tmp"])


def test_a_concurrent_saves_temp_folder_survives_and_a_dead_ones_goes(tmp_path, store):
    proc, live = _hold(tmp_path, "model", kind="dir")
    try:
        save_model_store(store, tmp_path / "model")
        assert live.is_dir()
        load_model_store(tmp_path / "model")
    finally:
        _kill(proc)
    save_model_store(store, tmp_path / "model")
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_a_temp_removed_by_another_process_is_never_renamed_into_place(tmp_path):
    temp = Temp.create(tmp_path, "x.csv")
    temp.path.unlink()
    temp.path.write_text("someone else's")
    with pytest.raises(OSError, match="removed by another process"):
        temp.replace(tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()
    temp.release()


# What a second SIGTERM must not do (the CI flake of test_sigterm_during_train_...[store],
# which left a half-removed .model.new-* behind): cut a cleanup short. A script, so that
# the handler is installed in a process of its own.
_SECOND_SIGNAL = """
import os, shutil, signal, sys
from pathlib import Path
from ephys2expr import temps

temps.stop_on_sigterm()
temp = temps.Temp.create(Path(sys.argv[1]), "model", directory=True)
for i in range(20):
    (temp.path / f"part{i}").write_text("x")
real_rmtree = shutil.rmtree

def rmtree(path, *args, **kwargs):  # a SIGTERM arrives while the folder is being removed
    os.kill(os.getpid(), signal.SIGTERM)
    real_rmtree(path, *args, **kwargs)

shutil.rmtree = rmtree
try:
    temp.discard()
except SystemExit as stop:
    print("discard stopped", stop.code, "left:", temp.path.exists())
try:
    raise SystemExit(143)  # unwinding from a first signal
except SystemExit:
    os.kill(os.getpid(), signal.SIGTERM)  # a repeat while the cleanup runs
    print("cleanup finished")
"""


def test_a_signal_during_a_cleanup_waits_until_the_temporary_is_gone(tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", _SECOND_SIGNAL, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    # the signal is handled once the removal is complete, and a repeat cuts nothing short
    assert res.stdout.splitlines() == ["discard stopped 143 left: False", "cleanup finished"]
    assert os.listdir(tmp_path) == []


# A signal that the kernel hands to another thread of the process (BLAS, HDF5 threads: a
# Ctrl-C or SIGTERM sent to the process lands on any thread not blocking it) while predict's
# output set is renamed into place: Python runs the handler in the main thread, between two
# renames, unless the handlers themselves wait.
_SIGNAL_IN_ANOTHER_THREAD = """
import os, signal, sys, threading
from pathlib import Path
from ephys2expr import temps
from ephys2expr.predict.outputs.output_set import OutputSet

folder, signum = Path(sys.argv[1]), int(sys.argv[2])
temps.stop_on_sigterm()
other = threading.Thread(target=threading.Event().wait, daemon=True)
other.start()
real_replace = os.replace

def replace(src, dst):  # the signal arrives, in the other thread, after the first rename
    real_replace(src, dst)
    if not replace.sent:
        replace.sent = True
        signal.pthread_kill(other.ident, signum)
        os.read(received, 1)
    sum(range(10_000))  # the main thread runs on: a pending handler would run here

replace.sent = False
os.replace = replace
# Python's C handler writes to the wakeup pipe from the thread that received the signal:
# the replace above waits for it, so the signal has arrived before the second rename
received, wakeup = os.pipe()
os.set_blocking(wakeup, False)
signal.set_wakeup_fd(wakeup)
try:
    with OutputSet() as outputs:
        for name in ("a.h5ad", "a.genes.parquet", "report.json"):
            outputs.temp(folder / name).write_text("new")
except (SystemExit, KeyboardInterrupt) as stop:
    print(type(stop).__name__)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_another_thread_receives_during_the_commit_waits_for_the_whole_set(
    tmp_path, signum
):
    for name in ("a.h5ad", "a.genes.parquet", "report.json"):
        (tmp_path / name).write_text("old")
    res = subprocess.run(
        [sys.executable, "-c", _SIGNAL_IN_ANOTHER_THREAD, str(tmp_path), str(int(signum))],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    # the run stops (it was told to), after the whole set: never old and new files mixed
    assert res.stdout.split() == ["SystemExit" if signum == signal.SIGTERM else "KeyboardInterrupt"]
    contents = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert contents == {"a.h5ad": "new", "a.genes.parquet": "new", "report.json": "new"}


# ------------------------------------------------------------------ train and SIGTERM
@pytest.fixture(scope="module")
def prepared(raw_dir, tmp_path_factory):
    return write_small_prepared(raw_dir, tmp_path_factory.mktemp("prepared"))


def _train_args(prepared: Path, out: Path) -> list[str]:
    return [
        "--prepared-dir",
        str(prepared),
        "--model-dir",
        str(out / "model"),
        "--out-dir",
        str(out / "train"),
        "--metrics",
        str(out / "train.json"),
        "--plots-dir",
        str(out / "plots"),
        "--report",
        str(out / "report.json"),
        "--params",
        str(ROOT / "params.yaml"),
        "--set",
        "n_alphas=8",
        "--set",
        "n_permutations=5",
    ]


def _temps(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*"))


def _outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory) -> Path:
    """The outputs of one train run (the 'previous outputs' a stopped run must keep)."""
    out = tmp_path_factory.mktemp("trained") / "out"
    first = subprocess.run(
        [sys.executable, "-m", "stages.train", *_train_args(prepared, out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr
    return out


# When to send SIGTERM: while training (its first log line about a feature set: nothing
# written yet), while the model store's new folder is being written, while a table or a
# plot is being written.
TRIGGERS = {
    "training": lambda out, log: b"feature set 1/" in log.read_bytes(),
    "store": lambda out, log: any(out.glob(".model.new-*")),
    "table or plot": lambda out, log: any(out.glob("*/.*.tmp")),
}


@pytest.mark.parametrize("when", list(TRIGGERS))
def test_sigterm_during_train_leaves_no_temp_and_the_previous_outputs(
    prepared, trained, tmp_path, when
):
    out = tmp_path / "out"
    shutil.copytree(trained, out)
    before = _outputs(out)
    args = _train_args(prepared, out) + ["--set", "seed=1"]  # other outputs than before
    log = tmp_path / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stages.train", *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        while proc.poll() is None and not TRIGGERS[when](out, log):
            time.sleep(0.002)
        assert proc.poll() is None, "the run finished before it could be stopped"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 128 + signal.SIGTERM, log.read_text()[-2000:]
    assert _temps(out) == []  # no temporary file or folder anywhere
    after = _outputs(out)
    assert set(after) == set(before)  # every output still there, each old or new, whole
    store = load_model_store(out / "model")
    assert store.provenance["params"]["seed"] in (0, 1)
    for name in after:
        if name.endswith(".parquet") and not name.startswith("model/"):
            pd.read_parquet(out / name)
    if when == "training":
        assert after == before


# ------------------------------------------------------------------ disk full
def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("writer", ["parquet", "csv", "json", "figure"])
def test_a_full_disk_is_one_line_naming_the_output(tmp_path, monkeypatch, writer):
    df = pd.DataFrame({"cv_r2": [0.1, 0.5]}, index=pd.Index(["Pvalb", "Sst"], name="gene"))
    path = tmp_path / "out" / f"x.{writer}"
    if writer == "parquet":
        monkeypatch.setattr(pq, "write_table", _disk_full)
        call = (write_parquet, df, path)
    elif writer == "csv":
        monkeypatch.setattr(pd.DataFrame, "to_csv", _disk_full)
        call = (write_csv, df, path)
    elif writer == "json":
        monkeypatch.setattr(Path, "write_text", _disk_full)
        call = (write_json, {"a": 1}, path)
    else:
        monkeypatch.setattr(plt.Figure, "savefig", _disk_full)
        call = (save_figure, plt.figure(), path)
    message = raises_one_line("No space left on device", *call)
    assert message == f"{path}: writing failed (No space left on device)"
    assert os.listdir(tmp_path / "out") == []  # no temporary left


def test_a_full_disk_while_saving_a_store_names_the_store_file(tmp_path, store, monkeypatch):
    save_model_store(store, tmp_path / "model")
    before = _outputs(tmp_path)
    monkeypatch.setattr(pq, "write_table", _disk_full)
    raises_one_line(
        f"{tmp_path / 'model' / 'coef.parquet'}: writing failed \\(No space left",
        save_model_store,
        store,
        tmp_path / "model",
    )
    assert _outputs(tmp_path) == before and os.listdir(tmp_path) == ["model"]


def test_a_full_disk_during_train_is_one_line_and_exit_2(prepared, tmp_path, monkeypatch):
    monkeypatch.setattr(pq, "write_table", _disk_full)
    res = runner.invoke(train_app, _train_args(prepared, tmp_path))
    assert_one_line_exit_2(
        res, f"{tmp_path / 'model' / 'coef.parquet'}: writing failed", "No space left on device"
    )
    assert _temps(tmp_path) == []


def test_a_full_disk_during_predict_names_the_destination(tmp_path, store, monkeypatch):
    save_model_store(store, tmp_path / "model")
    _cells(40, 0).to_parquet(tmp_path / "cells.parquet")
    out = tmp_path / "out" / "pred.parquet"
    monkeypatch.setattr(pq.ParquetWriter, "write_table", _disk_full)
    res = runner.invoke(
        predict_app,
        [
            str(c)
            for c in [
                "--input",
                tmp_path / "cells.parquet",
                "--output",
                out,
                "--model-dir",
                tmp_path / "model",
                "--set",
                "write_h5ad=false",
            ]
        ],
    )
    assert_one_line_exit_2(res, f"{out}: writing failed (No space left on device)")
    assert not (tmp_path / "out").exists()
