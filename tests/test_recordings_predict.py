"""From raw recording to predictions, end to end: one documented command each
(docs/predict-your-cells.md, "From recordings"), on the 5 shared recordings."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ephys2expr.features import CORE_FEATURES
from ephys2expr.model.store import save_model_store
from ephys2expr.train.run import train_from_prepared
from stages.features import app as features_app
from stages.predict import app as predict_app
from tests.train_data import train_settings, write_small_prepared

FILES = [
    "pyabf/171116sh_0018.abf",
    "pyabf/190619B_0003.abf",
    "pyabf/2019_07_24_0055_fsi.abf",
    "pyabf/File_axon_5.abf",
    "bluepyefe/99111002.nwb",
]


@pytest.fixture(scope="module")
def store_dir(raw_dir, tmp_path_factory):
    """A type-mean store trained by the train stage's function on the real 20 types (a few
    dozen genes, a short alpha path, no null: what is tested is the path, not the genes)."""
    prepared = write_small_prepared(raw_dir, tmp_path_factory.mktemp("prepared"), 30, 10)
    settings = train_settings(n_alphas=6, n_permutations=0, feature_sets={})
    out = train_from_prepared(prepared, settings, cell_inputs=[], min_features=5)  # full set
    folder = tmp_path_factory.mktemp("store") / "model"
    save_model_store(out.store, folder)
    return folder


@pytest.mark.parametrize("name", FILES)
def test_a_recording_goes_to_features_then_to_predictions(name, raw_dir, store_dir, tmp_path):
    runner = CliRunner()
    table = tmp_path / "mine.csv"
    res = runner.invoke(
        features_app,
        ["--input", str(raw_dir / "recordings" / name), "--output", str(table), "--no-progress"],
    )
    assert res.exit_code == 0, res.output
    cells = pd.read_csv(table, index_col="cell_id")
    cell = name.split("/")[1].rsplit(".", 1)[0]
    assert list(cells.index.astype(str)) == [cell]
    out = tmp_path / "mine.h5ad"
    cache = tmp_path.parent / "features_predict_cache"  # one on-demand fit for the module
    res = runner.invoke(
        predict_app,
        [
            "--model-dir",
            str(store_dir),
            "--input",
            str(table),
            "--output",
            str(out),
            "--set",
            "on_demand_null=0",
            "--set",
            f"cache_dir={cache}",
        ],
    )
    assert res.exit_code == 0, res.output
    adata = ad.read_h5ad(out)
    assert list(adata.obs_names) == [cell]
    assert np.isfinite(adata.X).all() and adata.n_vars > 0
    used = adata.obs["features_used"].iloc[0].split(",")
    have = [f for f in CORE_FEATURES if np.isfinite(cells.loc[cells.index[0], f])]
    assert used == have  # every feature the recording gave, and only those
