"""Nothing lost when `dvc repro` fails or is interrupted (issue #25).

The train stage of the pipeline's own dvc.yaml runs under DVC in a temporary git repo on
small real inputs. A typo in a setting, or a `dvc repro` whose dvc process alone is
killed, must leave the last good outputs in place, loadable and consistent with each
other, no temporary file and no stage process behind; the next `dvc repro` recovers to
byte-identical outputs with `git status` clean.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from ephys2expr.model.store import load_model_store
from tests.train_data import write_small_prepared

ROOT = Path(__file__).resolve().parent.parent


def _tree_md5(repo: Path, *folders: str) -> dict[str, str]:
    out = {}
    for folder in folders:
        for p in sorted((repo / folder).rglob("*")):
            if p.is_file():
                out[str(p.relative_to(repo))] = hashlib.md5(p.read_bytes()).hexdigest()
    return out


OUTPUTS = ("data/models", "data/train", "metrics", "reports", "plots")


def test_every_output_of_the_pipeline_persists():
    """DVC removes a stage's outputs before it runs the command unless they persist; the
    writers are atomic, so persisted outputs are the last good ones until a run succeeds."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        for kind in ("outs", "metrics", "plots"):
            for entry in body.get(kind, []):
                path, flags = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
                assert (flags or {}).get("persist") is True, f"{name}: {kind} {path} not persisted"


def _stage_processes(parent: int) -> list[psutil.Process]:
    """The ``python -m stages.*`` processes below ``parent`` (dvc)."""
    try:
        children = psutil.Process(parent).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for child in children:
        try:
            if "stages.train" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out


STAGE = """
import sys, time
from pathlib import Path
from ephys2expr.cli import run_stage
def app():
    try:
        Path(sys.argv[1]).write_text("running")
        time.sleep(120)
    except SystemExit as stop:  # what the atomic writers unwind on
        Path(sys.argv[1]).write_text(f"stopped {stop.code}")
        raise
run_stage(app)
"""


@pytest.mark.parametrize("prefix, suffix", [("exec ", ""), ("", "; true")], ids=["exec", "no-exec"])
def test_a_stage_dies_with_the_dvc_that_ran_it_in_a_shell(tmp_path, prefix, suffix):
    """A stand-in for dvc runs a stage as DVC does (`/bin/sh -c CMD`) and is killed. Whether
    the shell execs the stage (its parent is dvc) or waits for it (its parent is the shell,
    which outlives dvc) depends on the shell: both must stop the stage."""
    mark = tmp_path / "mark"
    cmd = f"{prefix}{sys.executable} -c '{STAGE}' {mark}{suffix}"
    run = f"import subprocess; subprocess.run({['/bin/sh', '-c', cmd]!r})"
    dvc = subprocess.Popen([sys.executable, "-c", run])
    stage = None
    for _ in range(600):
        stage = next(
            (
                p
                for p in psutil.Process(dvc.pid).children(recursive=True)
                if p.cmdline()[:2] == [sys.executable, "-c"]
            ),
            None,
        )
        if stage is not None and mark.exists() and mark.read_text() == "running":
            break
        psutil.wait_procs([], timeout=0.05)
    assert stage is not None and mark.read_text() == "running", "the stage did not start"
    assert (stage.ppid() == dvc.pid) == (prefix == "exec ")
    dvc.kill()
    dvc.wait()
    gone, alive = psutil.wait_procs([stage], timeout=30)
    assert alive == [], "the stage outlived dvc"
    assert mark.read_text() == "stopped 143"


WATCHER_AT_EXIT = """
import atexit, threading
from ephys2expr.cli import watch_launcher
# registered first, so it runs after the stage's own exit hooks (atexit is last-in, first-out)
atexit.register(lambda: print(any(t.name == "watch-launcher" and t.is_alive()
                                  for t in threading.enumerate())))
assert watch_launcher(every=0.001)
"""


def test_the_launcher_watcher_is_stopped_before_the_interpreter_finalises():
    """A daemon thread still polling when Python finalises is ended by pthread_exit, and its
    forced unwind can abort the process (exit 134, "terminate called without an active
    exception"): CI saw it once in a stage's exit-2 error path. The watcher must be joined
    by the time the interpreter finalises, so the exit code is always the stage's own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-c", WATCHER_AT_EXIT], env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False", "the watcher thread is alive at finalisation"


@pytest.fixture(scope="module")
def repo(raw_dir, tmp_path_factory):
    """A git + DVC repo holding the train stage as dvc.yaml writes it, small real inputs."""
    repo = tmp_path_factory.mktemp("recovery") / "repo"
    write_small_prepared(raw_dir, repo / "data" / "prepared" / "rds")
    for rel in ("stages", "ephys2expr"):
        shutil.copytree(ROOT / rel, repo / rel, ignore=shutil.ignore_patterns("__pycache__"))
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": stage}}))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(n_alphas=8, n_permutations=20)
    # train reads no predict setting: the tables its sets follow are the cells section's
    (repo / "params.yaml").write_text(
        yaml.safe_dump({k: v for k, v in params.items() if k not in ("validate", "predict")})
    )
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    return repo


@pytest.fixture(scope="module")
def env():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONSAFEPATH"] = "1"  # the installed package (numba's compile cache is reused)
    # DVC runs a command in `$SHELL -c`, else `/bin/sh -c`. Debian's /bin/sh (dash) does not
    # exec the command, so the stage's parent is a shell that outlives a killed dvc: the
    # harder case, and what a machine without $SHELL (CI) gets.
    env["SHELL"] = "/bin/sh"
    return env


def _sh(env, repo, *cmd, check=True):
    res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if check:
        assert res.returncode == 0, f"{' '.join(cmd)}:\n{res.stdout}\n{res.stderr}"
    return res


def _temps(repo: Path) -> list[str]:
    return sorted(
        str(p.relative_to(repo))
        for p in repo.rglob("*")
        if ".tmp" in p.name and ".git" not in p.parts and ".dvc" not in p.parts
    )


def test_failed_or_killed_repro_keeps_the_last_good_outputs(repo, env):
    _sh(env, repo, "git", "init", "-q")
    _sh(env, repo, "dvc", "init", "-q")
    _sh(env, repo, "dvc", "config", "core.analytics", "false")
    _sh(env, repo, "dvc", "repro", "train@rds")
    _sh(env, repo, "git", "add", "-A")
    _sh(env, repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "good")
    good = _tree_md5(repo, *OUTPUTS)
    assert any(p.startswith("data/models/rds/") for p in good)

    # 1. a typo in one setting: a one-line error, and every output is still the good one
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("alpha: auto", "alpha: -1"))
    res = _sh(env, repo, "dvc", "repro", "train@rds", check=False)
    assert res.returncode != 0 and "train.alpha" in res.stdout + res.stderr
    assert _tree_md5(repo, *OUTPUTS) == good
    load_model_store(repo / "data" / "models" / "rds")

    # 2. `dvc repro` of another setting killed while the stage runs: only the dvc process
    # gets the signal; the stage process must die with it (were it left running, it would
    # finish later and overwrite the outputs with another model) and leave the good outputs
    # and no temp file
    slow = yaml.safe_load(params)
    slow["train"].update(alpha=0.05, n_permutations=3000, null_stop_after=0)
    (repo / "params.yaml").write_text(yaml.safe_dump(slow))
    dvc = subprocess.Popen(
        ["dvc", "repro", "train@rds"],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in dvc.stderr:  # the stage's log: kill once it is training
        if "nested CV" in line:
            break
    stage = _stage_processes(dvc.pid)
    assert stage, "the stage process is not running"
    dvc.send_signal(signal.SIGKILL)
    dvc.wait()
    gone, alive = psutil.wait_procs(stage, timeout=120)
    assert alive == [], "the stage process outlived dvc"
    assert _tree_md5(repo, *OUTPUTS) == good
    assert _temps(repo) == []
    load_model_store(repo / "data" / "models" / "rds")

    # 3. the next repro recovers: byte-identical outputs, git status clean
    (repo / "params.yaml").write_text(params)
    _sh(env, repo, "dvc", "repro", "train@rds")
    assert _tree_md5(repo, *OUTPUTS) == good
    assert _sh(env, repo, "git", "status", "--porcelain").stdout == ""
    assert _temps(repo) == []
