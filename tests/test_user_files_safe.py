"""Nothing of the user's is ever deleted, replaced or written through a link (#32, 1-3).

Each test puts a user's files (and a model store) beside the run, runs the real code, and
checks by md5 that every byte of theirs is still there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ephys2expr.errors import InputError
from ephys2expr.io import write_json
from ephys2expr.model.store import load_model_store, save_model_store
from ephys2expr.train import on_demand
from ephys2expr.train.run import train_from_prepared
from stages.predict import app
from tests.helpers import assert_one_line_exit_2
from tests.train_data import train_settings, write_small_prepared


@pytest.fixture(scope="module")
def small(raw_dir, tmp_path_factory):
    """A store trained on small real inputs (full and no_tau_cap sets, null of 20), its
    prepared folder (cells_aibs_v6 / cells_aibs_v10) and its folder."""
    prepared = write_small_prepared(raw_dir, tmp_path_factory.mktemp("prepared"))
    out = train_from_prepared(
        prepared,
        train_settings(n_alphas=8, n_permutations=20),
        cell_inputs=["aibs_v6", "aibs_v10"],
        min_features=5,
    )
    folder = tmp_path_factory.mktemp("store") / "model"
    save_model_store(out.store, folder)
    return load_model_store(folder), folder, prepared


def md5s(folder: Path) -> dict[str, str]:
    """md5 of every file below ``folder`` (links not followed), by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def user_files(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "thesis.txt").write_text("three years of work\n")
    (folder / "results.csv").write_text("cell_id,rin\nmine1,120\n")
    (folder / "README.md").write_text("# my project\n")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "notes.txt").write_text("keep me\n")
    return md5s(folder)


def params_file(folder: Path, **predict) -> Path:
    path = folder / "my_params.yaml"
    path.write_text(yaml.safe_dump({"cells": {"inputs": ["aibs_v6"]}, "predict": predict}))
    return path


def run_predict(store_dir, prepared, out, plots, params, *extra):
    return CliRunner().invoke(
        app,
        [
            "--params",
            str(params),
            "--model-dir",
            str(store_dir),
            "--prepared-dir",
            str(prepared),
            "--out-dir",
            str(out),
            "--plots-dir",
            str(plots),
            *extra,
        ],
    )


def test_predict_prunes_only_what_it_wrote_never_a_users_folder(small, tmp_path, monkeypatch):
    """--out-dir and --plots-dir are folders of the user's (even '.', even the prepared
    folder itself): every file of theirs survives; an output of an earlier run that this run
    no longer writes (Parquet turned off) is removed."""
    _, store_dir, prepared = small
    mine = tmp_path / "mine"
    shutil.copytree(prepared, mine)  # the run's own inputs live in the output folder
    before = user_files(mine)
    store_before = md5s(store_dir)
    monkeypatch.chdir(mine)
    params = params_file(tmp_path, write_parquet=True)
    res = run_predict(store_dir, ".", ".", ".", params)
    assert res.exit_code == 0, res.output
    assert (mine / "aibs_v6.h5ad").is_file() and (mine / "aibs_v6.parquet").is_file()
    params = params_file(tmp_path, write_parquet=False)
    res = run_predict(store_dir, ".", ".", ".", params)
    assert res.exit_code == 0, res.output
    assert (mine / "aibs_v6.h5ad").is_file()
    assert not (mine / "aibs_v6.parquet").exists()  # this run's own stale output: pruned
    after = md5s(mine)
    assert {k: after.get(k) for k in before} == before  # thesis, README, inputs: untouched
    assert md5s(store_dir) == store_before


def test_a_folder_without_manifest_loses_nothing(small, tmp_path):
    """A folder predict never wrote (no manifest) keeps even files named like outputs."""
    _, store_dir, prepared = small
    out = tmp_path / "out"
    before = user_files(out)
    (out / "aibs_v10.h5ad").write_text("a user's file that happens to have an output's name")
    before = md5s(out)
    res = run_predict(store_dir, prepared, out, out, params_file(tmp_path))
    assert res.exit_code == 0, res.output
    after = md5s(out)
    assert {k: after.get(k) for k in before} == before


def special_outputs(tmp_path: Path) -> dict[str, Path]:
    """A FIFO, a link to /dev/null and (as root) a character device like /dev/null, in a
    folder of the test's own."""
    specials = {}
    fifo = tmp_path / "fifo.h5ad"  # a name every option accepts
    os.mkfifo(fifo)
    specials["FIFO"] = fifo
    link = tmp_path / "null_link.h5ad"
    link.symlink_to("/dev/null")
    specials["character device"] = link
    node = tmp_path / "null_node.h5ad"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        specials["character device "] = node
    except (PermissionError, OSError):
        pass
    return specials


def test_outputs_never_replace_devices_fifos_or_links_to_them(small, tmp_path):
    """--report, --metrics and --output naming a FIFO, a device or a link to one: one line,
    exit 2, and the special file is still what it was."""
    store, store_dir, prepared = small
    specials = special_outputs(tmp_path)
    cells = tmp_path / "cells.csv"
    store.train_features.rename_axis("cell_id").to_csv(cells)
    for kind, path in specials.items():
        mode = os.lstat(path).st_mode
        for option in ("--report", "--metrics", "--output"):
            args = ["--model-dir", str(store_dir), "--input", str(cells), option, str(path)]
            if option != "--output":
                args += ["--output", str(tmp_path / "pred.h5ad")]
            res = CliRunner().invoke(app, args)
            assert_one_line_exit_2(res, kind.strip(), "not a regular file")
            assert os.lstat(path).st_mode == mode
            assert not (tmp_path / "pred.h5ad").exists()
    # every other stage writes through io.atomic_path: the same check
    with pytest.raises(InputError, match="is a FIFO, not a regular file"):
        write_json({"a": 1}, specials["FIFO"])
    assert stat.S_ISFIFO(os.lstat(specials["FIFO"]).st_mode)


def test_an_output_that_is_a_link_replaces_the_link_never_its_target(small, tmp_path):
    """A report path that is a symlink to a user's file: the link is replaced by the new
    report, the file it pointed to keeps its bytes."""
    store, store_dir, _ = small
    theirs = tmp_path / "theirs.json"
    theirs.write_text('{"mine": true}\n')
    link = tmp_path / "report.json"
    link.symlink_to(theirs)
    cells = tmp_path / "cells.csv"
    store.train_features.rename_axis("cell_id").to_csv(cells)
    res = CliRunner().invoke(
        app,
        [
            "--model-dir",
            str(store_dir),
            "--input",
            str(cells),
            "--output",
            str(tmp_path / "p.h5ad"),
            "--report",
            str(link),
        ],
    )
    assert res.exit_code == 0, res.output
    assert theirs.read_text() == '{"mine": true}\n'
    assert not link.is_symlink() and '"model"' in link.read_text()


def lacking_set(store):
    """The store without its no_tau_cap set, and that set's features (fitted on demand)."""
    from tests.helpers import without_set

    return without_set(store, "no_tau_cap"), store.model("no_tau_cap").features


def test_a_planted_link_in_the_cache_never_redirects_a_store(small, tmp_path):
    """A symlink under the cache key (computable from public inputs) pointing at a model
    store: the set is fitted and cached beside it, the store it points to keeps every byte."""
    store, store_dir, _ = small
    victim = tmp_path / "victim"
    shutil.copytree(store_dir, victim)
    before = md5s(victim)
    lacking, features = lacking_set(store)
    cache = tmp_path / "cache"
    cache.mkdir()
    settings = on_demand.trained_settings(lacking).replace(n_permutations=0)
    key = on_demand.cache_key(lacking, features, settings.as_dict())
    (cache / key).symlink_to(victim)
    model, note = on_demand.fit_feature_set(lacking, features, n_permutations=0, cache_dir=cache)
    assert not note["cached"] and note["cache"] == str(cache / f"{key}-1")
    assert model.features == features
    assert md5s(victim) == before and (cache / key).is_symlink()
    _, again = on_demand.fit_feature_set(lacking, features, n_permutations=0, cache_dir=cache)
    assert again["cached"] and again["cache"] == note["cache"]


def test_a_cache_entry_is_used_only_for_exactly_its_inputs(small, tmp_path, caplog):
    """An entry fitted with the null off, placed under the key of a null of 20, is passed
    over with one log line: the set is refitted beside it, with its q-values."""
    store, _, _ = small
    lacking, features = lacking_set(store)
    cache = tmp_path / "cache"
    _, off = on_demand.fit_feature_set(lacking, features, n_permutations=0, cache_dir=cache)
    settings = on_demand.trained_settings(lacking).replace(n_permutations=20)
    key = on_demand.cache_key(lacking, features, settings.as_dict())
    os.rename(off["cache"], cache / key)
    with caplog.at_level("WARNING", logger="ephys2expr"):
        model, note = on_demand.fit_feature_set(
            lacking, features, n_permutations=20, cache_dir=cache
        )
    assert not note["cached"] and note["cache"] == str(cache / f"{key}-1")
    assert "fitted from other inputs" in caplog.text
    assert model.primary.genes["q_value"].notna().all()


def test_a_broken_or_unwritable_cache_degrades_to_an_uncached_fit(small, tmp_path, caplog):
    store, _, _ = small
    lacking, features = lacking_set(store)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with caplog.at_level("WARNING", logger="ephys2expr"):
        model, note = on_demand.fit_feature_set(
            lacking, features, n_permutations=0, cache_dir=blocker / "cache"
        )
    assert model.features == features and note["cache"] is None
    assert "not written" in caplog.text
    # a corrupt entry under the key: passed over, refitted beside it, found there next time
    cache = tmp_path / "cache"
    settings = on_demand.trained_settings(lacking).replace(n_permutations=0)
    key = on_demand.cache_key(lacking, features, settings.as_dict())
    (cache / key).mkdir(parents=True)
    (cache / key / "model.json").write_text("{ not json")
    _, note = on_demand.fit_feature_set(lacking, features, n_permutations=0, cache_dir=cache)
    assert not note["cached"] and note["cache"].endswith(f"{key}-1")
    _, note = on_demand.fit_feature_set(lacking, features, n_permutations=0, cache_dir=cache)
    assert note["cached"]


def test_the_cache_is_never_inside_a_model_store_or_the_data_folder(small, tmp_path, monkeypatch):
    _, store_dir, _ = small
    with pytest.raises(InputError, match="lies inside the model store"):
        on_demand.cache_root(store_dir / "cache")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "cache").mkdir(parents=True)
    with pytest.raises(InputError, match="lies inside the data folder"):
        on_demand.cache_root("data/cache")
    assert on_demand.cache_root(tmp_path / "elsewhere") == tmp_path / "elsewhere"
