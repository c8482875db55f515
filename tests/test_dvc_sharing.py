"""Team sharing: `dvc push` -> fresh clone -> plain `dvc pull` -> only the predictions rebuild.

Runs on the session's small pipeline (``pipeline_repo``, tests/conftest.py: the project's
dvc.yaml as written, real raw data, one small feature set). The stores hold a feature set for
every pattern the pipeline's inputs need, so the rebuilt predictions need no on-demand fit:
the clone has an empty ``$XDG_CACHE_HOME`` and no network, and nothing is fitted.
"""

from __future__ import annotations

import yaml

from tests.dvc_repo import copy_repo, dvc_env, sh, tree_md5


def test_push_clone_plain_pull_rebuilds_only_the_predictions(pipeline_repo, tmp_path):
    repo = copy_repo(pipeline_repo, tmp_path / "repo")
    clone, remote = tmp_path / "clone", tmp_path / "remote"
    env = dvc_env()
    sh(env, repo, "dvc", "remote", "add", "-d", "team", str(remote))
    sh(env, repo, "git", "commit", "-qam", "the team remote")
    sh(env, repo, "dvc", "push")
    assert (repo / "data" / "predictions" / "rds" / "aibs_v6.h5ad").is_file()
    assert (repo / "data" / "predictions" / "scala2021" / "aibs_v6.h5ad").is_file()
    predictions = tree_md5(repo / "data" / "predictions")

    sh(env, tmp_path, "git", "clone", "-q", str(repo), str(clone))
    sh(env, clone, "dvc", "pull")  # plain pull: must succeed without the predictions
    for shared in ("data/raw", "data/prepared", "data/models", "data/train"):
        assert (clone / shared).is_dir() and any((clone / shared).iterdir()), shared
    assert not (clone / "data" / "predictions").exists()
    status = yaml.safe_load(sh(env, clone, "dvc", "status", "--json") or "{}")
    assert sorted(status) == ["predict@rds", "predict@scala2021"], status

    cache = tmp_path / "empty_cache"  # nothing fitted on demand: the cache stays empty
    out = sh({**env, "XDG_CACHE_HOME": str(cache)}, clone, "dvc", "repro")
    ran = [line for line in out.splitlines() if line.startswith("Running stage")]
    assert sorted(ran) == [f"Running stage 'predict@{s}':" for s in ("rds", "scala2021")], out
    assert not cache.exists() or not any(cache.rglob("model.json"))
    assert tree_md5(clone / "data" / "predictions") == predictions
    assert sh(env, clone, "git", "status", "--porcelain") == ""
    assert "up to date" in sh(env, clone, "dvc", "status")
