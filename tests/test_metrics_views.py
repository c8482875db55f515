"""DVC's own views of the metrics fit a 120-column terminal.

``dvc metrics show`` prints one table: a row per metrics file, a column per key (the union
over every file). Every ``metrics/train_<source>.json`` holds the same keys (the r2 and RMSE
distributions, ``train.summary.HEADLINE_KEYS``), so ``dvc metrics show metrics/train_*.json``
prints one row per source; the other stages' files hold a few flat keys, shared between
stages where they mean the same thing (``genes``, ``cells``); everything else is in
``reports/``. The
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
from ephys2expr.train.summary import HEADLINE_KEYS
from ephys2expr.train.summary import headline_metrics as train_headline
from ephys2expr.validate.run import headline_metrics as validate_headline

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 120
MAX_KEYS = 3  # per metrics file of prepare, predict and validate
# What a key means is the same in every file that has it (docs/pipeline.md, "Metrics").
VOCABULARY = {"genes", "cells", "type_top1", "xlab_excinh", "xlab_ece", *HEADLINE_KEYS}


def _known(key: str) -> bool:
    return key in VOCABULARY


needs_dvc = pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc is not installed")


def _metrics_files() -> list[Path]:
    files = sorted((ROOT / "metrics").glob("*.json"))
    assert files, "no metrics/*.json"
    return files


def test_metrics_files_hold_a_few_flat_keys_of_the_vocabulary():
    for path in _metrics_files():
        metrics = json.loads(path.read_text())
        if path.name.startswith("train_"):  # the same keys for every source
            assert sorted(metrics) == sorted(HEADLINE_KEYS), path.name
        else:
            assert 1 <= len(metrics) <= MAX_KEYS, (path.name, sorted(metrics))
        unknown = sorted(k for k in metrics if not _known(k))
        assert not unknown, (path.name, unknown)
        assert all(isinstance(v, int | float | None) for v in metrics.values()), path.name
        # rounded for people, the same on every machine (train.summary.HEADLINE_DIGITS)
        assert all(v == round(v, 4) for v in metrics.values() if isinstance(v, float)), path


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


def test_train_headline_has_the_same_keys_for_every_source():
    """The distributions' keys for every source, null where a number does not apply (no
    null, no identity classifier, intervals of another level), floats to 4 decimals."""
    model = {
        "r2_q10": -0.41234567,
        "r2_median": 0.25,
        "r2_q90": 0.5,
        "rmse_median": 1.0,
        "rmse_q90": 2.123456,
        "frac_r2_gt_0.1": 0.3,
    }
    intervals = {"level": 0.9, "method": "plain", "methods": {"plain": {"coverage": 0.901}}}
    report = {
        "model": model,
        "null": {"genes_significant_and_beating_all": 7},
        "identity": {"family": {"accuracy": 0.84}},
        "intervals": intervals,
    }
    assert train_headline({**report, "source": "scala2021"}) == {
        "r2_10": -0.4123,
        "r2_50": 0.25,
        "r2_90": 0.5,
        "rmse_50": 1.0,
        "rmse_90": 2.1235,
        "sig": 7,
        "r2_gt01": 0.3,
        "fam_acc": 0.84,
        "cov90": 0.901,
    }
    bare = train_headline({"model": {**model, "r2_q90": float("nan")}})
    assert tuple(bare) == HEADLINE_KEYS
    assert bare["sig"] is bare["fam_acc"] is bare["cov90"] is bare["r2_90"] is None


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "COLUMNS": str(WIDTH), "DVC_NO_ANALYTICS": "1"}
    res = subprocess.run(["dvc", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


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
def test_dvc_metrics_show_of_the_train_files_is_one_row_per_source_in_120_columns(repo):
    train = sorted(str(p.relative_to(ROOT)) for p in _metrics_files() if "train_" in p.name)
    out = _dvc(repo, "metrics", "show", *train)
    assert _width(out) <= WIDTH, out
    lines = out.splitlines()
    assert len(lines) == 1 + len(train)  # a header and one row per source
    assert {"r2_10", "r2_50", "r2_90", "rmse_50", "sig"} <= set(lines[0].split()), lines[0]
    # every file: one table, a header and a row per file (wider than 120 columns: docs)
    lines = _dvc(repo, "metrics", "show").splitlines()
    assert len(lines) == 1 + len(_metrics_files())
    assert all(_known(key) for key in lines[0].split()[1:]), lines[0]


@needs_dvc
def test_dvc_metrics_diff_all_prints_unchanged_numbers(repo):
    assert _dvc(repo, "metrics", "diff") == ""  # DVC's default: silence when nothing changed
    out = _dvc(repo, "metrics", "diff", "--all")
    # DVC lists every number; a null (a key that does not apply to a source) is no number
    n_values = sum(
        v is not None for p in _metrics_files() for v in json.loads(p.read_text()).values()
    )
    assert len(out.splitlines()) == 1 + n_values and _width(out) <= WIDTH, out


def _documented_exp_show() -> list[str]:
    """The ``dvc exp show`` line of docs/pipeline.md's code block."""
    text = (ROOT / "docs" / "pipeline.md").read_text()
    lines = re.findall(r"^(dvc exp show .*?)\s*(?:#.*)?$", text, re.M)
    assert len(lines) == 1, lines
    return shlex.split(lines[0])[1:]


@needs_dvc
def test_documented_dvc_exp_show_fits_120_columns(repo):
    """After an experiment that changes train.alpha (and so the metrics) and adds a source
    of one's own (the template's paired params: 1,562 columns before they were dropped),
    the documented invocation shows the headline numbers and the changed parameter, nothing
    cut ("…"), even with a 30-character experiment name."""
    _git(repo, "checkout", "-q", "-b", "exp-alpha-0.05-with-a-long-name")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["alpha"] = 0.05
    params["prepare"]["sources"].append("template")
    files = {k: f"examples/patchseq_template/{k}.csv" for k in ("features", "counts", "metadata")}
    params["prepare"]["paired"] = {
        "template": {
            **files,
            "columns": {
                "library": "total_reads",
                "group": "mouse",
                "type": "t_type",
                "family": "family",
            },
        }
    }
    params["train_template"] = {"n_folds": 3, "n_permutations": 20}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy(repo / "metrics" / "train_scala2021.json", repo / "metrics" / "train_template.json")
    for path in (repo / "metrics").glob("*.json"):
        metrics = json.loads(path.read_text())
        changed = {
            k: v + 1 if isinstance(v, int) else None if v is None else round(v + 0.01, 4)
            for k, v in metrics.items()
        }
        path.write_text(json.dumps(changed))
    _git(repo, "commit", "-qam", "alpha 0.05")
    out = _dvc(repo, *_documented_exp_show(), "--no-pager", "-n", "2")
    assert _width(out) <= WIDTH, out
    assert "…" not in out, out
    header = next(line for line in out.splitlines() if "Experiment" in line).split()
    assert {"type_top1", "train.alpha"} <= set(header), header
