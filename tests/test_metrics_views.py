"""DVC's own views of the metrics fit a 120-column terminal.

``dvc metrics show`` prints one table: a row per metrics file, a column per key (the union
over every file). So the metrics files hold a few flat keys, shared between stages where
they mean the same thing (``genes``, ``cells``); everything else is in ``reports/``. The
``dvc exp show`` invocation documented in docs/pipeline.md and ``dvc metrics diff --all``
are checked the same way, by running DVC in a temporary git repository holding a copy of
``dvc.yaml``, ``params.yaml`` and ``metrics/``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ephys2expr.predict.summary import headline_metrics as predict_headline
from ephys2expr.train.summary import headline_metrics as train_headline
from ephys2expr.validate.run import headline_metrics as validate_headline

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 120
MAX_KEYS = 3  # per metrics file
# What a key means is the same in every file that has it (docs/pipeline.md, "Metrics").
VOCABULARY = {"genes", "cells", "type_top1"}
# train's keys name their source (r2_rds, sig_scala2021, ...): a key of its own per model
SOURCE_KEYS = re.compile(r"^(r2|sig)_[A-Za-z0-9_.-]+$")


def _known(key: str) -> bool:
    return key in VOCABULARY or bool(SOURCE_KEYS.match(key))


needs_dvc = pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc is not installed")


def _metrics_files() -> list[Path]:
    files = sorted((ROOT / "metrics").glob("*.json"))
    assert files, "no metrics/*.json"
    return files


def test_metrics_files_hold_a_few_flat_keys_of_the_vocabulary():
    for path in _metrics_files():
        metrics = json.loads(path.read_text())
        assert 1 <= len(metrics) <= MAX_KEYS, (path.name, sorted(metrics))
        unknown = sorted(k for k in metrics if not _known(k))
        assert not unknown, (path.name, unknown)
        assert all(isinstance(v, int | float) for v in metrics.values()), path.name


def test_committed_metrics_are_the_headline_of_the_committed_reports():
    """metrics/X.json is what its stage computes from reports/X.json (nothing stale, and the
    numbers that left the metrics are still in the reports)."""
    from ephys2expr.prepare.run import _headline, _paired_headline

    for path in _metrics_files():
        report = json.loads((ROOT / "reports" / path.name).read_text())
        stage = path.stem.split("_")[0]
        if stage == "prepare":
            expected = _paired_headline(report) if "paired" in report else _headline(report)
        else:
            headline = {"train": train_headline, "predict": predict_headline}
            expected = headline.get(stage, validate_headline)(report)
        assert json.loads(path.read_text()) == expected, path.name


def test_train_headline_names_the_model_kind():
    report = {"model": {"r2_median": 0.25}, "null": {"genes_significant_and_beating_all": 7}}
    assert train_headline({**report, "rows": "cells"}) == {"r2_cells": 0.25, "sig_cells": 7}
    named = {**report, "rows": "cells", "source": "scala2021"}
    assert train_headline(named) == {"r2_scala2021": 0.25, "sig_scala2021": 7}
    assert train_headline({**report, "rows": "types"}) == {"r2_types": 0.25, "sig_types": 7}
    del report["null"]  # n_permutations: 0
    assert train_headline({**report, "rows": "types"}) == {"r2_types": 0.25}


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "COLUMNS": str(WIDTH), "DVC_NO_ANALYTICS": "1"}
    res = subprocess.run(["dvc", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo, check=True, capture_output=True,
    )  # fmt: skip


@pytest.fixture
def repo(tmp_path) -> Path:
    """A git + DVC repository with this project's dvc.yaml, params.yaml and metrics."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "metrics", tmp_path / "metrics")
    _git(tmp_path, "init", "-q", "-b", "main")
    _dvc(tmp_path, "init", "-q")
    _dvc(tmp_path, "config", "core.analytics", "false")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "baseline")
    return tmp_path


def _width(text: str) -> int:
    return max(len(line.rstrip()) for line in text.splitlines())


@needs_dvc
def test_dvc_metrics_show_fits_120_columns(repo):
    out = _dvc(repo, "metrics", "show")
    assert _width(out) <= WIDTH, out
    lines = out.splitlines()
    assert len(lines) == 1 + len(_metrics_files())  # a header and one row per file
    assert all(_known(key) for key in lines[0].split()[1:]), lines[0]


@needs_dvc
def test_dvc_metrics_diff_all_prints_unchanged_numbers(repo):
    assert _dvc(repo, "metrics", "diff") == ""  # DVC's default: silence when nothing changed
    out = _dvc(repo, "metrics", "diff", "--all")
    n_values = sum(len(json.loads(p.read_text())) for p in _metrics_files())
    assert len(out.splitlines()) == 1 + n_values and _width(out) <= WIDTH, out


def _documented_exp_show() -> list[str]:
    """The ``dvc exp show`` line of docs/pipeline.md's code block."""
    text = (ROOT / "docs" / "pipeline.md").read_text()
    lines = re.findall(r"^(dvc exp show .*?)\s*(?:#.*)?$", text, re.M)
    assert len(lines) == 1, lines
    return shlex.split(lines[0])[1:]


@needs_dvc
def test_documented_dvc_exp_show_fits_120_columns(repo):
    """After an experiment that changes train.alpha (and so the metrics), the documented
    invocation shows the headline numbers and the changed parameter, nothing cut ("…"),
    even with a 30-character experiment name."""
    _git(repo, "checkout", "-q", "-b", "exp-alpha-0.05-with-a-long-name")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["alpha"] = 0.05
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    for path in (repo / "metrics").glob("*.json"):
        metrics = json.loads(path.read_text())
        changed = {
            k: v + 1 if isinstance(v, int) else round(v + 0.01, 4) for k, v in metrics.items()
        }
        path.write_text(json.dumps(changed))
    _git(repo, "commit", "-qam", "alpha 0.05")
    out = _dvc(repo, *_documented_exp_show(), "--no-pager", "-n", "2")
    assert _width(out) <= WIDTH, out
    assert "…" not in out, out
    header = next(line for line in out.splitlines() if "Experiment" in line).split()
    assert {
        "r2_rds",
        "r2_scala2021",
        "sig_rds",
        "sig_scala2021",
        "type_top1",
        "train.alpha",
    } <= set(header), header
