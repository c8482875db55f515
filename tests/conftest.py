"""Shared fixtures: the real raw data, and small raw trees built from it; a private cache."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "data" / "raw"


# The order the files are handed to the workers (pyproject.toml turns off xdist's own
# reordering by test count, which had a worker wait about 50 s for the pipeline): first the
# pipeline's builder (``pipeline_repo``: whichever worker asks first builds it under a lock,
# the others wait), meanwhile 100 s of files that fit no model (the builder's train
# compiles the numba kernels meanwhile: a fresh clone has no compiled ones, and two workers
# compiling them at once cost ~45 s each), then the heaviest other files, the pipeline's
# other users, heaviest first, and the short files last so that both workers end together.
# Heaviest by their seconds in ``--durations`` on the 2-core machine (2026-12-08).
PIPELINE_FIRST = "test_sources"
# (about 100 s on the CI machine: until the builder's train has cached the last kernel, the
# null's, at ~90 s; the other worker fitting before that compiled it again, ~25 s)
NO_FITS_FIRST = (
    "test_prepare",
    "test_cli_help",
    "test_small_things",
    "test_download",
    "test_metrics_views",
    "test_scaling",
    "test_plots_offline",
    "test_temper",
    "test_dvc_deps",
    "test_measured",
    "test_recordings",
    "test_adversarial_inputs",
    "test_paired",
    "test_recordings_efel",
)
HEAVY_FIRST = (
    "test_train_stage",
    "test_null",
    "test_temps",
    "test_store",
    "test_train_cells",
    "test_identity",
    "test_dvc_recovery",
    "test_predict_io",
    "test_user_files_safe",
    "test_evaluation",
)
PIPELINE_USERS = ("test_template", "test_same_everywhere", "test_dvc_sharing")


def pytest_configure(config) -> None:
    """Compile the package and the stages once. Machines that set PYTHONDONTWRITEBYTECODE
    (this one does) otherwise compile them from source in every stage and DVC subprocess
    of the suite: about 0.4 s each, hundreds of times. Reading compiled files is allowed
    there; compileall writes them whatever the setting. Once, in the process that starts
    pytest-xdist's workers (it runs before they are started), not again in each worker."""
    if hasattr(config, "workerinput"):
        return
    import compileall

    for folder in ("ephys2expr", "stages"):
        compileall.compile_dir(ROOT / folder, quiet=1)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups into node ids
def pytest_collection_modifyitems(config, items) -> None:
    """Groups for pytest-xdist's ``--dist loadgroup`` (pyproject.toml): the tests of one file
    run in one worker, so its module fixtures (trained stores, nested CVs) are built once.
    Order: see :data:`HEAVY_FIRST`."""
    pipeline_files = {
        item.path for item in items if "pipeline_repo" in getattr(item, "fixturenames", ())
    }
    for item in items:
        item.add_marker(pytest.mark.xdist_group(item.path.stem))

    def rank(item) -> tuple[int, int]:
        stem = item.path.stem
        if stem == PIPELINE_FIRST:
            return (0, 0)
        if stem in NO_FITS_FIRST:
            return (1, NO_FITS_FIRST.index(stem))
        if stem in HEAVY_FIRST:
            return (2, HEAVY_FIRST.index(stem))
        if item.path in pipeline_files:
            return (3, PIPELINE_USERS.index(stem) if stem in PIPELINE_USERS else 99)
        return (4, 0)

    items.sort(key=rank)  # stable: files keep their order within a rank


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
    ``model: lasso``: tests/dvc_repo.py), and committed. Built once per run, whatever the
    number of pytest-xdist workers (the first to ask builds it under a lock in the run's
    shared temp folder; the others wait and reuse it). Read-only: a test that changes it
    works on a copy (``tests.dvc_repo.copy_repo``)."""
    import fcntl

    from tests.dvc_repo import dvc_env, project_copy, ran, sh

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / "pipeline"
    folder.mkdir(exist_ok=True)
    repo, done = folder / "repo", folder / "built"
    with open(shared / "pipeline.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the worker dies
        if not done.exists():
            shutil.rmtree(repo, ignore_errors=True)  # a build that failed in another worker
            repo.mkdir()
            project_copy(repo, raw_dir)
            env = dvc_env()
            out = sh(env, repo, "dvc", "repro")
            stages = ("predict", "prepare", "train")
            assert ran(out) == [f"{s}@{x}" for s in stages for x in ("rds", "scala2021")], out
            sh(env, repo, "git", "add", "-A")
            sh(env, repo, "git", "commit", "-qm", "run")
            done.touch()
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
