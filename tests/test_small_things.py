"""Issue #32 item 5: ``--version`` on every stage, one cell shown, obsm names anndata accepts."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ephys2expr import __version__
from ephys2expr.model.store import save_model_store
from ephys2expr.predict.outputs.write import write_predictions
from stages.predict import app as predict_app
from stages.show import app as show_app
from tests.helpers import assert_one_line_exit_2
from tests.test_predict import _cells
from tests.test_predict_io import _store

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.mark.parametrize("stage", ["prepare", "train", "predict", "validate", "download", "show"])
def test_every_stage_prints_its_version(stage):
    res = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"ephys2expr {__version__}") and len(res.stdout.splitlines()) == 1


@pytest.fixture(scope="module")
def predicted(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("show")
    save_model_store(_store(60), d / "model")
    cells = _cells(40, 0)
    cells.to_parquet(d / "cells.parquet")
    res = runner.invoke(
        predict_app,
        [
            "--model-dir",
            str(d / "model"),
            "--input",
            str(d / "cells.parquet"),
            "--output",
            str(d / "p.h5ad"),
        ],
    )
    assert res.exit_code == 0, res.output
    return d / "p.h5ad"


def test_show_prints_one_cells_top_genes_and_ood_score(predicted):
    import anndata as ad

    adata = ad.read_h5ad(predicted)
    cell = str(adata.obs_names[3])
    res = runner.invoke(show_app, ["--predictions", str(predicted), "--cell", cell, "--top", "4"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == f"cell {cell} ({predicted})"
    assert f"ood_score {adata.obs.loc[cell, 'ood_score']:.1f}" in lines[2]
    # the 4 highest predictions of that cell, in order, with their values
    row = pd.Series(np.asarray(adata[cell].X).ravel(), index=adata.var_names)
    expected = row.sort_values(ascending=False).head(4)
    shown = [ln.split() for ln in lines[-4:]]
    assert [s[0] for s in shown] == list(expected.index)
    assert [float(s[1]) for s in shown] == pytest.approx(list(expected.round(2)), abs=0.006)


def test_show_of_an_unknown_cell_is_one_line(predicted):
    res = runner.invoke(show_app, ["--predictions", str(predicted), "--cell", "nope"])
    assert_one_line_exit_2(res, f"{predicted}: no cell nope")


def test_obsm_columns_with_a_slash_are_written_without_a_future_warning(tmp_path):
    """Scala 2021 types such as 'L2/3 IT_2': anndata warned once per name (8 per predict)."""
    store = _store(20)
    X = _cells(30, 0)[store.features].to_numpy()
    X = np.nan_to_num(X, nan=1.0)
    meta = pd.DataFrame(index=pd.Index([f"c{i}" for i in range(len(X))], name="cell_id"))
    proba = pd.DataFrame(
        np.full((len(X), 3), 1 / 3, dtype=np.float32),
        index=meta.index,
        columns=["L2/3 IT_2", "L5/6 NP CT", "Pvalb"],
    )
    path = tmp_path / "p.h5ad"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        write_predictions(
            None,
            store,
            X,
            meta,
            np.arange(len(store.primary.genes)),
            h5ad_path=path,
            obsm={"type_proba": proba},
        )
    import anndata as ad

    written = ad.read_h5ad(path).obsm["type_proba"]
    assert list(written.columns) == ["L2-3 IT_2", "L5-6 NP CT", "Pvalb"]


def test_compare_outputs_has_a_help_and_names_an_unknown_commit():
    """``scripts/compare_outputs.py --help`` crashed (it took '--help' for a commit)."""
    script = [sys.executable, "scripts/compare_outputs.py"]
    res = subprocess.run([*script, "--help"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("usage: compare_outputs.py")
    res = subprocess.run([*script, "no-such-commit"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("error: no-such-commit: no such commit or file with a dvc.lock")
