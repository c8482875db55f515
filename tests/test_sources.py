"""Sources side by side, with real DVC in a copy of the project (its dvc.yaml as written, the
real raw data, small settings): a change to one source's training section reruns that
source's train stage only, and adding a source retrains none of the others."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import yaml

from tests.test_dvc_sharing import FAST, _project_copy, _sh, _tree_md5, env  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("prepare", "train")  # predict and validate only read what these write
TEMPLATE = (
    "+prepare.paired.template={features: examples/patchseq_template/features.csv, "
    "counts: examples/patchseq_template/counts.csv, metadata: examples/patchseq_template/"
    "metadata.csv, columns: {library: total_reads, group: mouse, type: t_type, family: family}}"
)


def _ran(out: str) -> list[str]:
    return sorted(line.split("'")[1] for line in out.splitlines() if line.startswith("Running"))


def _status(environ, repo) -> dict:
    return yaml.safe_load(_sh(environ, repo, "dvc", "status", "--json") or "{}")


def _lock(repo: Path) -> dict:
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]


def test_one_sources_train_setting_reruns_only_that_source(raw_dir, tmp_path, env):  # noqa: F811
    repo = tmp_path / "repo"
    repo.mkdir()
    _project_copy(repo, raw_dir)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {s: stages[s] for s in STAGES}}))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare"]["min_detected"] = 0.5  # fewer Scala genes: faster, same logic
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert params["train"]["n_permutations"] == FAST["train"]["n_permutations"]
    shutil.copytree(ROOT / "examples", repo / "examples")
    for cmd in (("git", "init", "-q"), ("git", "config", "user.name", "t"),
                ("git", "config", "user.email", "t@t"), ("dvc", "init", "-q"),
                ("dvc", "config", "core.analytics", "false")):  # fmt: skip
        _sh(env, repo, *cmd)
    out = _sh(env, repo, "dvc", "repro")
    assert _ran(out) == ["prepare@rds", "prepare@scala2021", "train@rds", "train@scala2021"]
    _sh(env, repo, "git", "add", "-A")
    _sh(env, repo, "git", "commit", "-qm", "run")
    rds_model, lock = _tree_md5(repo / "data" / "models" / "rds"), _lock(repo)

    # dvc status sees a source's section as that source's train stage's param only ...
    edited = yaml.safe_load((repo / "params.yaml").read_text())
    edited["train_rds"] = {"n_alphas": 5}
    (repo / "params.yaml").write_text(yaml.safe_dump(edited))
    assert sorted(_status(env, repo)) == ["train@rds"]
    # ... while the shared section is every source's
    edited["train_rds"], edited["train"]["n_alphas"] = {}, 5
    (repo / "params.yaml").write_text(yaml.safe_dump(edited))
    assert sorted(_status(env, repo)) == ["train@rds", "train@scala2021"]
    _sh(env, repo, "git", "checkout", "--", "params.yaml")

    # the experiment a user runs: only train@scala2021 reruns, with 3 folds
    out = _sh(env, repo, "dvc", "exp", "run", "-S", "+train_scala2021.n_folds=3")
    assert _ran(out) == ["train@scala2021"], out
    assert yaml.safe_load((repo / "params.yaml").read_text())["train_scala2021"] == {"n_folds": 3}
    store = (repo / "data" / "models" / "scala2021" / "model.json").read_text()
    assert '"n_folds": 3' in store
    assert _tree_md5(repo / "data" / "models" / "rds") == rds_model
    assert _lock(repo)["train@rds"] == lock["train@rds"]
    assert _lock(repo)["train@scala2021"]["params"]["params.yaml"]["train_scala2021"] == {
        "n_folds": 3
    }
    assert "up to date" in _sh(env, repo, "dvc", "status")

    # adding a Patch-seq source beside the others: its stages run; the other prepare stages
    # rerun (prepare.paired is theirs too) but write the same tables, so nothing retrains
    out = _sh(env, repo, "dvc", "exp", "run", "-S", "prepare.sources=[rds,scala2021,template]",
              "-S", TEMPLATE, "-S", "+train_template={n_folds: 3}")  # fmt: skip
    assert _ran(out) == ["prepare@rds", "prepare@scala2021", "prepare@template", "train@template"]
    assert _tree_md5(repo / "data" / "models" / "rds") == rds_model
    for stage in ("prepare@rds", "train@rds"):
        assert _lock(repo)[stage]["outs"] == lock[stage]["outs"], stage
    report = (repo / "reports" / "prepare_rds.json").read_bytes()
    assert hashlib.md5(report).hexdigest() == _outs_md5(lock["prepare@rds"], "reports/")


def _outs_md5(stage: dict, prefix: str) -> str:
    (md5,) = [o["md5"] for o in stage["outs"] if o["path"].startswith(prefix)]
    return md5
