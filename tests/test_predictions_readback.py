"""A newcomer reads predictions back (issue #24): every gene, the file's metadata, species.

* constant genes are left out of the files, and ``read_predictions(path, store=<folder>)``
  (or a loaded store) puts every one back; a store that did not make the file is refused;
* ``uns["ephys2expr"]`` is a dict (as anndata writes it), the same as the Parquet metadata;
* the store records the species of its training rows, and cells of another species are
  flagged per cell (obs ``species_mismatch``) with ONE warning line.
"""

from __future__ import annotations

import dataclasses
import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ephys2expr.model.store import load_model_store, save_model_store
from ephys2expr.predict.inputs.cells import species_mismatch
from ephys2expr.predict.outputs.read import constant_genes, file_metadata, read_predictions
from stages.predict import app
from tests.helpers import assert_one_line_exit_2, raises_one_line
from tests.test_predict import _cells
from tests.test_predict_io import _store

runner = CliRunner()


def _mouse_store(seed: int = 0, md5: str = "a" * 32):
    provenance = {"species": "mouse", "inputs_md5": {"train_features": md5}}
    return dataclasses.replace(_store(seed=seed), provenance=provenance)


@pytest.fixture
def work(tmp_path):
    save_model_store(_mouse_store(), tmp_path / "model")
    cells = _cells(30, 0)
    cells["species"] = ["human" if i % 3 == 0 else "mouse" for i in range(len(cells))]
    cells.to_csv(tmp_path / "cells.csv", index_label="cell_id")
    no_species = cells.drop(columns=["species"])
    no_species.to_csv(tmp_path / "plain.csv", index_label="cell_id")
    (tmp_path / "params.yaml").write_text("predict: {}\n")
    return tmp_path


def _predict(work, source, output, *args):
    base = ["--model-dir", work / "model", "--params", work / "params.yaml"]
    out = work / "out" / output
    res = runner.invoke(app, [str(a) for a in (*base, "--input", source, "--output", out, *args)])
    assert res.exit_code == 0, res.output
    return out


def test_every_gene_back_from_the_store_folder(work):
    h5 = _predict(work, work / "plain.csv", "p.h5ad")
    store = load_model_store(work / "model")
    const = list(store.primary.genes.index[constant_genes(store)])
    assert const and not set(const) & set(ad.read_h5ad(h5, backed="r").var_names)
    by_path, _ = read_predictions(h5, store=work / "model")
    by_str, _ = read_predictions(str(h5), store=str(work / "model"))
    loaded, _ = read_predictions(h5, store=store)
    assert list(by_path.columns) == list(store.primary.genes.index)
    np.testing.assert_array_equal(by_path.to_numpy(), loaded.to_numpy())
    np.testing.assert_array_equal(by_str.to_numpy(), loaded.to_numpy())
    one, _ = read_predictions(h5, genes=[const[0]], store=work / "model")
    np.testing.assert_array_equal(
        one[const[0]].to_numpy(),
        np.full(len(one), store.primary.intercept[constant_genes(store)[0]], dtype=np.float32),
    )
    # without the store, the error says how to get the gene back (the folder predict used)
    message = raises_one_line(f"no gene {const[0]}", read_predictions, h5, genes=[const[0]])
    assert f"store={str(work / 'model')!r}" in message
    # a folder that is no store, and a store that did not make this file: one line each
    raises_one_line("not a model store", read_predictions, h5, store=work / "nowhere")
    save_model_store(_mouse_store(seed=1, md5="b" * 32), work / "other")
    raises_one_line("another model store", read_predictions, h5, store=work / "other")


def test_uns_is_a_dict_equal_to_the_parquet_metadata(work):
    h5 = _predict(work, work / "plain.csv", "p.h5ad")
    pq = _predict(work, work / "plain.csv", "p.parquet")
    uns = ad.read_h5ad(h5).uns["ephys2expr"]
    assert isinstance(uns, dict) and isinstance(uns["model_provenance"], dict)
    assert uns["model_provenance"]["species"] == "mouse" and uns["genes"] == "varying"
    assert uns["constant_genes_omitted"] == len(constant_genes(load_model_store(work / "model")))
    assert file_metadata(h5) == file_metadata(pq)
    assert file_metadata(h5)["features"] == list(load_model_store(work / "model").features)


def test_cells_of_another_species_are_flagged_with_one_warning(work, caplog):
    with caplog.at_level(logging.WARNING, logger="ephys2expr"):
        h5 = _predict(work, work / "cells.csv", "p.h5ad")
    obs = ad.read_h5ad(h5).obs
    human = obs["species"].astype(str) == "human"
    assert human.any() and (~human).any()
    np.testing.assert_array_equal(obs["species_mismatch"].to_numpy(), human.to_numpy())
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert f"{int(human.sum())} of {len(obs)} predicted cells are human" in warnings[0]
    assert "trained on mouse" in warnings[0]


def test_species_option_on_a_csv_is_recorded_and_checked(work, caplog):
    with caplog.at_level(logging.WARNING, logger="ephys2expr"):
        h5 = _predict(work, work / "plain.csv", "h.h5ad", "--species", "human")
    obs = ad.read_h5ad(h5).obs
    assert (obs["species"] == "human").all() and obs["species_mismatch"].all()
    assert sum(r.levelno >= logging.WARNING for r in caplog.records) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ephys2expr"):
        pq = _predict(work, work / "plain.csv", "u.parquet")
    _, meta = read_predictions(pq)
    assert (meta["species"] == "unknown").all() and not meta["species_mismatch"].any()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_species_mismatch_rules():
    import pandas as pd

    species = pd.Series(["mouse", "human", "unknown", "human"])
    np.testing.assert_array_equal(species_mismatch(species, "mouse"), [0, 1, 0, 1])
    np.testing.assert_array_equal(species_mismatch(species, "human,mouse"), [0, 0, 0, 0])
    # a store of an older version (no species recorded) flags nothing
    np.testing.assert_array_equal(species_mismatch(species, "unknown"), [0, 0, 0, 0])


def test_store_species_comes_from_the_training_rows():
    """prepare writes train_types ``species`` (rds and scala2021 are mouse); train records
    it in the store's provenance."""
    import pandas as pd

    from ephys2expr.prepare.run import with_species
    from ephys2expr.train.inputs import training_species

    types = pd.DataFrame({"broad_type": ["Exc", "Inh"]}, index=["a", "b"])
    assert training_species(types) == "unknown"  # prepared by an older version
    for source in ("rds", "scala2021"):
        assert training_species(with_species(types, source)) == "mouse"
    assert training_species(with_species(types, "paired")) == "unknown"
    given = types.assign(species=["Mouse", "human"])
    assert training_species(with_species(given, "paired")) == "human,mouse"


def test_species_option_is_normalised_and_never_contradicts_the_column(work, caplog):
    """`--species "Mus musculus"` is mouse (no warning for a mouse store); `--species`
    fills only cells without a species and may not contradict a cell's own."""
    with caplog.at_level(logging.WARNING, logger="ephys2expr"):
        h5 = _predict(work, work / "plain.csv", "m.h5ad", "--species", "Mus musculus")
    obs = ad.read_h5ad(h5).obs
    assert (obs["species"] == "mouse").all() and not obs["species_mismatch"].any()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    base = ["--model-dir", work / "model", "--params", work / "params.yaml"]
    res = runner.invoke(
        app,
        [
            str(a)
            for a in (
                *base,
                "--input",
                work / "cells.csv",
                "--output",
                work / "out" / "x.h5ad",
                "--species",
                "Human",
            )
        ],
    )
    assert_one_line_exit_2(
        res, "cells.csv: --species human contradicts its 'species' column", "cell(s) say mouse"
    )
    assert not (work / "out" / "x.h5ad").exists()
    cells = pd.read_csv(work / "cells.csv", index_col="cell_id")
    cells.loc[cells["species"] == "mouse", "species"] = ""  # blanks: the option fills them
    cells.to_csv(work / "blanks.csv")
    obs = ad.read_h5ad(_predict(work, work / "blanks.csv", "b.h5ad", "--species", "HUMAN")).obs
    assert (obs["species"] == "human").all()
