"""A copy of the project in a temporary git + DVC repo, for the tests of DVC's mechanics.

The pipeline's own dvc.yaml (its stages, outputs and sharing flags as written) with the real
raw data and settings that keep the science's code paths but not its cost: one small
feature set (``cells.min_features: 11``: only the full set is derived; no user sets),
``train.model: lasso``, a few hundred genes, few alphas and permutations. The session
fixture ``pipeline_repo`` (tests/conftest.py) runs ``dvc repro`` on it once; tests that
change it work on a copy (:func:`copy_repo`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("prepare", "train", "predict")  # validate is left out for time (t-SNE/UMAP)
FAST = {
    "prepare": {"top_variable": 400, "min_detected": 0.5},
    "train": {"n_alphas": 6, "n_permutations": 5, "model": "lasso", "feature_sets": {}},
    "cells": {"min_features": 11},
}


def dvc_env() -> dict:
    """The environment of the DVC commands: this venv first on PATH, and the installed
    package imported rather than the copies (numba's compile cache is reused)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env["PYTHONSAFEPATH"] = "1"
    return env


def sh(env, cwd, *cmd) -> str:
    """Run ``cmd`` in ``cwd``; assert it succeeded; its stdout."""
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(cmd)}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def tree_md5(path: Path) -> dict[str, str]:
    """md5 of every file below ``path`` (relative paths), to compare rebuilt outputs."""
    return {
        str(p.relative_to(path)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def project_copy(repo: Path, raw_dir: Path, stages=STAGES) -> None:
    """The pipeline files (``stages`` of dvc.yaml), the real raw data, the template example
    and :data:`FAST` params in ``repo``, made a git + DVC repo."""
    dvc_stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {s: dvc_stages[s] for s in stages}}))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in FAST.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    for rel in ("stages", "ephys2expr"):
        shutil.copytree(ROOT / rel, repo / rel, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "examples", repo / "examples")
    shutil.copytree(raw_dir, repo / "data" / "raw")
    shutil.copy(ROOT / "data" / "raw.dvc", repo / "data" / "raw.dvc")
    shutil.copy(ROOT / "data" / ".gitignore", repo / "data" / ".gitignore")
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    env = dvc_env()
    for cmd in (
        ("git", "init", "-q"),
        ("git", "config", "user.name", "t"),
        ("git", "config", "user.email", "t@t"),
        ("dvc", "init", "-q"),
        ("dvc", "config", "core.analytics", "false"),
    ):
        sh(env, repo, *cmd)


def copy_repo(repo: Path, dest: Path) -> Path:
    """A copy of the git + DVC repo ``repo`` (work tree, git history, DVC cache) at
    ``dest``, for a test that changes it."""
    shutil.copytree(repo, dest, symlinks=True)
    return dest


def ran(out: str) -> list[str]:
    """The stages ``dvc repro`` / ``dvc exp run`` printed as running, sorted."""
    return sorted(line.split("'")[1] for line in out.splitlines() if line.startswith("Running"))
