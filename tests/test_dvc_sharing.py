"""Team sharing: `dvc push` -> fresh clone -> plain `dvc pull` -> only unshared stages rebuild.

The pipeline's own dvc.yaml is copied (its stages, outputs and their sharing flags as
written) into a temporary git repo with the real raw data and small settings (a few hundred
genes, few permutations), so that the round trip takes about a minute. validate is left out
for time (its t-SNE/UMAP); its outputs are shared like train's.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("prepare", "train", "predict")
FAST = {
    "prepare": {"top_variable": 400},
    "train": {"n_alphas": 6, "n_permutations": 5},
}


def _tree_md5(path: Path) -> dict[str, str]:
    """md5 of every file below ``path`` (relative paths), to compare rebuilt outputs."""
    return {
        str(p.relative_to(path)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def env():
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    # import the installed package, not the copies (numba's compile cache is reused)
    env["PYTHONSAFEPATH"] = "1"
    return env


def _sh(env, cwd, *cmd):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(cmd)}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def _project_copy(repo: Path, raw_dir: Path) -> None:
    """The pipeline files, the real raw data and fast params in a new git + DVC repo."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {s: stages[s] for s in STAGES}}))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in FAST.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    for rel in ("stages", "ephys2expr"):
        shutil.copytree(ROOT / rel, repo / rel, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(raw_dir, repo / "data" / "raw")
    shutil.copy(ROOT / "data" / "raw.dvc", repo / "data" / "raw.dvc")
    shutil.copy(ROOT / "data" / ".gitignore", repo / "data" / ".gitignore")
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")


def test_push_clone_plain_pull_rebuilds_only_unshared_outputs(raw_dir, tmp_path, env):
    repo, clone, remote = tmp_path / "repo", tmp_path / "clone", tmp_path / "remote"
    repo.mkdir()
    _project_copy(repo, raw_dir)
    _sh(env, repo, "git", "init", "-q")
    _sh(env, repo, "dvc", "init", "-q")
    _sh(env, repo, "dvc", "config", "core.analytics", "false")
    _sh(env, repo, "dvc", "remote", "add", "-d", "team", str(remote))
    _sh(env, repo, "dvc", "repro")
    _sh(env, repo, "git", "add", "-A")
    _sh(env, repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run")
    _sh(env, repo, "dvc", "push")
    assert (repo / "data" / "predictions" / "rds" / "aibs_v6.h5ad").is_file()
    assert (repo / "data" / "predictions" / "scala2021" / "aibs_v6.h5ad").is_file()
    predictions = _tree_md5(repo / "data" / "predictions")

    _sh(env, tmp_path, "git", "clone", "-q", str(repo), str(clone))
    _sh(env, clone, "dvc", "pull")  # plain pull: must succeed without the predictions
    for shared in ("data/raw", "data/prepared", "data/models", "data/train"):
        assert (clone / shared).is_dir() and any((clone / shared).iterdir()), shared
    assert not (clone / "data" / "predictions").exists()
    status = yaml.safe_load(_sh(env, clone, "dvc", "status", "--json") or "{}")
    assert sorted(status) == ["predict@rds", "predict@scala2021"], status

    out = _sh(env, clone, "dvc", "repro")
    ran = [line for line in out.splitlines() if line.startswith("Running stage")]
    assert sorted(ran) == [f"Running stage 'predict@{s}':" for s in ("rds", "scala2021")], out
    assert _tree_md5(clone / "data" / "predictions") == predictions
    assert _sh(env, clone, "git", "status", "--porcelain") == ""
    assert "up to date" in _sh(env, clone, "dvc", "status")
