"""Sources side by side, with real DVC in a copy of the project (its dvc.yaml as written, the
real raw data, small settings: the session's ``pipeline_repo``): a change to one source's
training section reruns that source's train stage only (adding a source, which retrains none
of the others: tests/test_template.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.dvc_repo import FAST, copy_repo, dvc_env, ran, sh, tree_md5


def _status(environ, repo) -> dict:
    return yaml.safe_load(sh(environ, repo, "dvc", "status", "--json") or "{}")


def _lock(repo: Path) -> dict:
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]


def test_one_sources_train_setting_reruns_only_that_source(pipeline_repo, tmp_path):
    repo, env = copy_repo(pipeline_repo, tmp_path / "repo"), dvc_env()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["train"]["n_permutations"] == FAST["train"]["n_permutations"]
    rds_model, lock = tree_md5(repo / "data" / "models" / "rds"), _lock(repo)

    # dvc status sees a source's section as that source's train stage's param only ...
    edited = yaml.safe_load((repo / "params.yaml").read_text())
    edited["train_rds"] = {"n_alphas": 5}
    (repo / "params.yaml").write_text(yaml.safe_dump(edited))
    assert sorted(_status(env, repo)) == ["train@rds"]
    # ... while the shared section is every source's
    edited["train_rds"], edited["train"]["n_alphas"] = {}, 5
    (repo / "params.yaml").write_text(yaml.safe_dump(edited))
    assert sorted(_status(env, repo)) == ["train@rds", "train@scala2021"]
    # a predict setting reruns no train stage (train reads only the cells section of it)
    edited["train"]["n_alphas"] = params["train"]["n_alphas"]
    edited["predict"]["ood_neighbors"] = 4
    (repo / "params.yaml").write_text(yaml.safe_dump(edited))
    assert sorted(_status(env, repo)) == ["predict@rds", "predict@scala2021"]
    edited["predict"]["ood_neighbors"], edited["cells"]["min_features"] = 5, 10
    (repo / "params.yaml").write_text(yaml.safe_dump(edited))
    assert sorted(_status(env, repo)) == [
        f"{s}@{src}" for s in ("predict", "train") for src in ("rds", "scala2021")
    ]
    sh(env, repo, "git", "checkout", "--", "params.yaml")

    # the experiment a user runs: only train@scala2021 (and what reads it) reruns, 3 folds
    out = sh(env, repo, "dvc", "exp", "run", "-S", "+train_scala2021.n_folds=3")
    assert ran(out) == ["predict@scala2021", "train@scala2021"], out
    assert yaml.safe_load((repo / "params.yaml").read_text())["train_scala2021"] == {"n_folds": 3}
    store = (repo / "data" / "models" / "scala2021" / "model.json").read_text()
    assert '"n_folds": 3' in store
    assert tree_md5(repo / "data" / "models" / "rds") == rds_model
    assert _lock(repo)["train@rds"] == lock["train@rds"]
    assert _lock(repo)["train@scala2021"]["params"]["params.yaml"]["train_scala2021"] == {
        "n_folds": 3
    }
    assert "up to date" in sh(env, repo, "dvc", "status")
