"""The train and predict stages of dvc.yaml as written, run by ``dvc repro`` (the session's
small pipeline, ``pipeline_repo``: real raw data, small settings): what each writes, and a
second ``dvc repro`` that has nothing to do."""

from __future__ import annotations

import json

from ephys2expr.model.store import load_model_store
from tests.dvc_repo import copy_repo, dvc_env, ran, sh


def _json(repo, rel: str) -> dict:
    return json.loads((repo / rel).read_text())


def test_train_writes_a_loadable_store_and_its_report(pipeline_repo):
    for source in ("rds", "scala2021"):
        store = load_model_store(pipeline_repo / "data" / "models" / source)
        report = _json(pipeline_repo, f"reports/train_{source}.json")
        assert store.primary.coef.shape[0] == report["n_genes"] > 50, source
        assert (pipeline_repo / "metrics" / f"train_{source}.json").is_file()


def test_predict_writes_the_default_outputs_and_counts_every_cell(pipeline_repo):
    for source in ("rds", "scala2021"):
        report = _json(pipeline_repo, f"reports/predict_{source}.json")["inputs"]
        head = _json(pipeline_repo, f"metrics/predict_{source}.json")
        assert head["cells"] == sum(report[name]["predicted"] for name in report) > 0
        for name, item in report.items():
            by_species = item["per_species"].values()
            assert item["predicted"] == sum(s["predicted"] for s in by_species)
            assert item["cells_in"] == sum(s["cells_in"] for s in by_species)
            assert item["predicted"] + item["dropped"] == item["cells_in"]
            # the defaults write the h5ad (primary) and the genes table, not the wide Parquet
            folder = pipeline_repo / "data" / "predictions" / source
            assert (folder / f"{name}.h5ad").is_file()
            assert (folder / f"{name}.genes.parquet").is_file()
            assert not (folder / f"{name}.parquet").exists()
            assert (
                pipeline_repo / "plots" / "predict" / source / f"{name}_markers_by_cre.png"
            ).is_file()
    # with cells.min_features 11 (only the full set) no human v10 cell has every feature
    human = _json(pipeline_repo, "reports/predict_rds.json")["inputs"]["aibs_v10"]["per_species"]
    assert human["human"]["cells_in"] > 0 and human["human"]["predicted"] == 0


def test_a_second_repro_has_nothing_to_do(pipeline_repo, tmp_path):
    repo, env = copy_repo(pipeline_repo, tmp_path / "repo"), dvc_env()  # others read it
    assert ran(sh(env, repo, "dvc", "repro")) == []
    assert "up to date" in sh(env, repo, "dvc", "status")
    assert sh(env, repo, "git", "status", "--porcelain") == ""
