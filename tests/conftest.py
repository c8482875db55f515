"""Shared fixtures: the real raw data, and small raw trees built from it; a private cache."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "data" / "raw"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups into node ids
def pytest_collection_modifyitems(config, items) -> None:
    """Groups for pytest-xdist's ``--dist loadgroup`` (pyproject.toml): the tests of one file
    run in one worker, so its module fixtures (trained stores, nested CVs) are built once, and
    every file that uses the session's small pipeline (``pipeline_repo``) runs in one worker,
    so it is built once. That group is the longest: it goes first, the others fill the
    remaining workers beside it."""
    pipeline_files = {
        item.path for item in items if "pipeline_repo" in getattr(item, "fixturenames", ())
    }
    for item in items:
        group = "pipeline" if item.path in pipeline_files else item.path.stem
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: item.path not in pipeline_files)  # stable: files keep order


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory) -> Path:
    """Point ``$XDG_CACHE_HOME`` (the on-demand cache of predict, numba leaves its own alone)
    at a folder of this session: the suite is hermetic, a second run does not find the first
    run's fitted sets in ``~/.cache``, and nothing of a test is left in the user's home.
    Subprocesses (``dvc repro``, the stages) inherit it."""
    folder = tmp_path_factory.mktemp("xdg_cache")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session")
def raw_dir() -> Path:
    """The real raw data (``dvc pull`` puts it there)."""
    if not (RAW / "training" / "aibs_cre_expr_ephys.rda").is_file():
        pytest.fail("data/raw is missing: run `dvc pull` first (the README's test command does)")
    return RAW


@pytest.fixture(scope="session")
def pipeline_repo(raw_dir, tmp_path_factory) -> Path:
    """prepare, train and predict of the project's dvc.yaml, run once by ``dvc repro`` in a
    temporary git + DVC repo on the real raw data with small settings (one feature set,
    ``model: lasso``: tests/dvc_repo.py), and committed. Shared by the tests of DVC's
    mechanics; a test that changes it works on a copy (``tests.dvc_repo.copy_repo``)."""
    from tests.dvc_repo import dvc_env, project_copy, ran, sh

    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    repo.mkdir()
    project_copy(repo, raw_dir)
    env = dvc_env()
    out = sh(env, repo, "dvc", "repro")
    assert ran(out) == [
        f"{s}@{src}" for s in ("predict", "prepare", "train") for src in ("rds", "scala2021")
    ], out
    sh(env, repo, "git", "add", "-A")
    sh(env, repo, "git", "commit", "-qm", "run")
    return repo


@pytest.fixture(scope="session")
def real_training_table(raw_dir):
    """The real 20-type training data frame, as R stored it (read once per session)."""
    from ephys2expr.readers import read_r

    return read_r(raw_dir / "training" / "aibs_cre_expr_ephys.rda")


@pytest.fixture(scope="session")
def small_training_table(real_training_table):
    """The real table cut to its metadata, 11 features and 300 genes (incl. mangled names)."""
    from ephys2expr.features import CORE_FEATURES
    from ephys2expr.readers.training import _TYPE_METADATA

    table = real_training_table
    meta = [c for c in table.columns if c in _TYPE_METADATA]
    genes = [c for c in table.columns if c not in _TYPE_METADATA and c not in CORE_FEATURES]
    mangled = [
        g for g in ("Nkx2.1", "H2.M3", "X0610009B22Rik", "Pvalb", "Sst", "Vip") if g in genes
    ]
    chosen = mangled + [g for g in genes[:300] if g not in mangled]
    return table[meta + CORE_FEATURES + chosen].copy()


def write_rds(path: Path, frame) -> None:
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rdata.write_rds(path, frame)


@pytest.fixture
def small_raw(tmp_path, raw_dir, small_training_table) -> Path:
    """A raw tree like data/raw, with a small training table (fast to read, easy to break)."""
    dest = tmp_path / "raw"
    for sub in ("aibs", "genes"):
        shutil.copytree(raw_dir / sub, dest / sub)
    (dest / "training").mkdir()
    shutil.copy(raw_dir / "training" / "online_table3_excerpt.csv", dest / "training")
    write_rds(dest / "training" / "aibs_cre_expr_ephys.rda", small_training_table)
    return dest
