"""The template Patch-seq dataset (examples/patchseq_template): rebuilt byte for byte from
the real Scala 2021 files, and trained end to end by the recipe of
docs/train-your-patchseq.md, run as written in a copy of the session's pipeline with real DVC."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from typer.testing import CliRunner

from tests.dvc_repo import copy_repo, dvc_env, ran, sh, tree_md5
from tests.helpers import assert_one_line_exit_2

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "examples" / "patchseq_template"
FILES = ("features", "counts", "metadata")


def recipe_commands() -> list[str]:
    """The shell commands of the recipe block (continuation lines joined)."""
    text = (ROOT / "docs" / "train-your-patchseq.md").read_text()
    block = re.search(r"<!-- template recipe -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "docs/train-your-patchseq.md has no <!-- template recipe --> block"
    joined = block.group(1).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


def recipe_params() -> dict:
    """The recipe's -S values as params.yaml mappings (the same YAML DVC parses)."""
    params: dict = {}
    for value in re.findall(r"-S '([^']*)'", recipe_commands()[0]):
        key, _, text = value.lstrip("+").partition("=")
        *path, last = key.split(".")
        node = params
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(text)
    return params


def test_script_rebuilds_the_committed_template_byte_for_byte(raw_dir, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_template", ROOT / "scripts" / "make_patchseq_template.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--raw-dir", str(raw_dir), "--out-dir", str(tmp_path)])
    for name in FILES:
        assert (tmp_path / f"{name}.csv").read_bytes() == (TEMPLATE / f"{name}.csv").read_bytes()

    # what it holds: real Scala cells as the scala2021 source keeps them, 3 mice, 200 genes
    from ephys2expr.prepare.settings import PAIRED_DEFAULT_FEATURES
    from ephys2expr.readers.scala import read_scala2021
    from ephys2expr.taxonomy import CLASS_MARKERS

    features = pd.read_csv(TEMPLATE / "features.csv", index_col="cell_id")
    counts = pd.read_csv(TEMPLATE / "counts.csv", index_col="gene")
    meta = pd.read_csv(TEMPLATE / "metadata.csv", index_col="cell_id")
    scala = read_scala2021(raw_dir, feature_names=PAIRED_DEFAULT_FEATURES)
    assert list(features.columns) == PAIRED_DEFAULT_FEATURES
    assert list(counts.columns) == list(features.index) == list(meta.index)
    assert meta["mouse"].nunique() == 3 and counts.shape[0] == 200
    assert set(CLASS_MARKERS) <= set(counts.index)
    assert features.index.isin(scala.features.index).all()
    np.testing.assert_allclose(features, scala.features.loc[features.index], rtol=1e-9)
    np.testing.assert_array_equal(meta["mouse"], scala.metadata.loc[meta.index, "group"])
    log2cpm = np.log2(counts * 1e6 / meta["total_reads"] + 1)  # the source's expression back
    np.testing.assert_allclose(log2cpm, scala.expression.loc[counts.index, meta.index], rtol=1e-9)
    assert sum(f.stat().st_size for f in TEMPLATE.glob("*.csv")) < 1_000_000


def test_too_many_folds_for_the_template_says_what_to_set(raw_dir, tmp_path):
    """The recipe's settings but the shared n_folds (5) for 3 animals: one line naming the
    key and the command that fixes it for this source only; nothing written."""
    from stages.prepare import app as prepare_app
    from stages.train import app as train_app

    params = recipe_params()
    del params["train_template"]["n_folds"]
    for entry in params["prepare"]["paired"].values():  # paths relative to the project
        entry.update({k: str(ROOT / entry[k]) for k in FILES})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    common = ["--params", str(tmp_path / "params.yaml"), "--source", "template"]
    prepared = tmp_path / "prepared"
    res = CliRunner().invoke(
        prepare_app,
        [
            *common,
            "--raw-dir",
            str(raw_dir),
            "--out-dir",
            str(prepared),
            "--metrics",
            str(tmp_path / "p.json"),
            "--report",
            str(tmp_path / "pr.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    outputs = [
        "--model-dir",
        str(tmp_path / "model"),
        "--out-dir",
        str(tmp_path / "train"),
        "--plots-dir",
        str(tmp_path / "plots"),
        "--metrics",
        str(tmp_path / "t.json"),
        "--report",
        str(tmp_path / "tr.json"),
    ]
    res = CliRunner().invoke(train_app, [*common, "--prepared-dir", str(prepared), *outputs])
    assert_one_line_exit_2(
        res,
        "params.yaml train.n_folds: 5 folds for the 3 animals (groups) of source 'template'; "
        "set n_folds <= 3, e.g. dvc exp run -S +train_template.n_folds=3",
    )
    assert not (tmp_path / "model").exists() and not (tmp_path / "t.json").exists()
    # the source's own section is named once it holds the value
    params["train_template"]["n_folds"] = 4
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    res = CliRunner().invoke(train_app, [*common, "--prepared-dir", str(prepared), *outputs])
    assert_one_line_exit_2(
        res, "params.yaml train_template.n_folds: 4 folds", "dvc exp run -S train_template.n_"
    )


def test_recipe_trains_the_template_beside_the_other_sources(pipeline_repo, tmp_path):
    """The recipe, as written, in a copy of the session's pipeline (the project's dvc.yaml,
    real raw data, rds and scala2021 built with small settings): only the template's stages
    run, and they give a model store, metrics and predictions. Then the whole pipeline: the
    other prepare stages rerun (prepare.sources and prepare.paired are theirs too) but write
    the same tables, so no other source retrains."""
    repo, env = copy_repo(pipeline_repo, tmp_path / "repo"), dvc_env()
    rds_model, lock = tree_md5(repo / "data" / "models" / "rds"), _lock(repo)
    outputs = []
    for command in recipe_commands():
        res = subprocess.run(
            ["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True
        )
        assert res.returncode == 0, f"{command}\n{res.stdout}\n{res.stderr}"
        outputs.append(res.stdout + res.stderr)
    assert ran(outputs[0]) == [f"{s}@template" for s in ("predict", "prepare", "train")]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["prepare"]["sources"] == ["rds", "scala2021", "template"]
    prepared = json.loads((repo / "reports" / "prepare_template.json").read_text())
    n_genes = prepared["genes_kept"]
    assert (prepared["cells"], prepared["groups"]) == (28, 3) and 0 < n_genes <= 200
    headline = json.loads((repo / "metrics" / "prepare_template.json").read_text())
    assert headline == {"genes": n_genes, "cells": 28}
    # the log counts what the rows are: cells here, not cell types
    assert f"training {n_genes} genes on 28 cells x 11 features" in outputs[0]
    assert "cell types" not in outputs[0]
    model = json.loads((repo / "data" / "models" / "template" / "model.json").read_text())
    trained = model["provenance"]["params"]
    assert (trained["n_folds"], trained["n_permutations"], trained["cv"]) == (3, 20, "group_kfold")
    assert trained["alpha"] == params["train"]["alpha"]  # the rest: train's shared values
    report = json.loads((repo / "reports" / "train_template.json").read_text())
    assert report["n_genes"] == n_genes and "genes_beating" in report
    headline = json.loads((repo / "metrics" / "train_template.json").read_text())
    assert headline["r2_50"] == round(report["model"]["r2_median"], 4)
    assert "r2_50" in outputs[1]  # dvc metrics show printed the headline
    assert (repo / "data" / "predictions" / "template" / "aibs_v6.h5ad").is_file()

    out = sh(env, repo, "dvc", "repro")
    assert ran(out) == ["prepare@rds", "prepare@scala2021"], out
    assert tree_md5(repo / "data" / "models" / "rds") == rds_model
    for stage in ("prepare@rds", "train@rds", "train@scala2021"):
        assert _lock(repo)[stage]["outs"] == lock[stage]["outs"], stage
    assert "up to date" in sh(env, repo, "dvc", "status")


def _lock(repo: Path) -> dict:
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
