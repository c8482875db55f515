"""The model store as one unit: kills at every file boundary, checks on load, DVC reruns."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ephys2expr.errors import InputError
from ephys2expr.features import CORE_FEATURES
from ephys2expr.io import stale_dir_temps
from ephys2expr.model.estimator import MultiGeneElasticNet
from ephys2expr.model.intervals import GeneIntervals
from ephys2expr.model.store import (
    ModelStore,
    join_feature_sets,
    load_model_store,
    save_model_store,
    store_from_estimator,
)
from ephys2expr.model.store._checks import MAX_META_BYTES
from tests.helpers import as_schema_5, raises_one_line, with_primary
from tests.train_data import small_real_inputs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stores(raw_dir) -> dict[str, ModelStore]:
    """Two stores of the real 20-type table that differ in every file (alpha 0.05 and 0.3,
    as a rerun with another ``--set alpha`` would write)."""
    features, targets, _ = small_real_inputs(raw_dir, n_variable=60, n_flat=20)
    out = {}
    for name, alpha in (("old", 0.05), ("new", 0.3)):
        est = MultiGeneElasticNet(penalty="lasso", alpha=alpha).fit(
            features.to_numpy(), targets.T.to_numpy()
        )
        # intervals of the format's shape (training residuals stand in for out-of-fold ones)
        X = features.to_numpy(dtype=float)
        residuals = np.abs(targets.T.to_numpy() - est.predict(X))
        intervals = GeneIntervals.calibrate(
            "features",
            residuals,
            X,
            None,
            est.mean_,
            est.scale_,
            targets.index.copy(),
            list(features.columns),
        )
        out[name] = store_from_estimator(
            est,
            features,
            targets.index,
            provenance={"params": {"alpha": alpha}},
            intervals=intervals,
        )
    assert not np.allclose(out["old"].primary.coef, out["new"].primary.coef)
    return out


def _same(a: ModelStore, b: ModelStore) -> bool:
    return (
        a.primary.coef.equals(b.primary.coef)
        and a.primary.genes.equals(b.primary.genes)
        and np.array_equal(a.primary.scaler_mean, b.primary.scaler_mean)
        and a.provenance == b.provenance
        # a store of schema 5 or older has no intervals: the rest must be the same
        and (
            a.primary.intervals is None
            or b.primary.intervals is None
            or a.primary.intervals.table.equals(b.primary.intervals.table)
        )
    )


def _store_dir(tmp_path, store, name="model") -> Path:
    save_model_store(store, tmp_path / name)
    return tmp_path / name


# ---------------------------------------------------------------------- one unit, killed

# The child saves the new store over the old one and SIGKILLs itself right after the k-th
# file-system step: each file written (a temp file renamed into place), the folder swap, the
# removal of the replaced folder. Nothing is mocked but the counting.
_CHILD = """
import os, shutil, signal, sys
import ephys2expr.io as eio
from ephys2expr.model.store import load_model_store, save_model_store

src, dst, k, exchange = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
store = load_model_store(src)
steps = []

def counted(name, fn):
    def step(*args, **kwargs):
        result = fn(*args, **kwargs)
        steps.append(name)
        if len(steps) == k:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return step

os.replace = counted("replace", os.replace)
os.rename = counted("rename", os.rename)
shutil.rmtree = counted("rmtree", shutil.rmtree)
eio._exchange = counted("exchange", eio._exchange if exchange else lambda a, b: False)
save_model_store(store, dst)
print(" ".join(steps))
"""


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_a_save_killed_at_any_file_boundary_leaves_old_or_new_never_a_mix(
    stores, tmp_path, exchange
):
    src = _store_dir(tmp_path, stores["new"], "source")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    outcomes = []
    for k in range(1, 20):
        work = tmp_path / f"k{k}"
        target = _store_dir(work, stores["old"])
        res = subprocess.run(
            [sys.executable, "-c", _CHILD, str(src), str(target), str(k), str(int(exchange))],
            capture_output=True,
            text=True,
            env=env,
        )
        if res.returncode == 0:  # k is past the last step: the save completed
            steps = res.stdout.split()
            assert _same(load_model_store(target), stores["new"])
            break
        assert res.returncode == -signal.SIGKILL, res.stderr
        try:
            got = load_model_store(target)
            outcomes.append("old" if _same(got, stores["old"]) else "new")
            assert _same(got, stores[outcomes[-1]]), f"killed after step {k}: a mixed store"
        except InputError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(str(target)), message
            assert "a save is running or was interrupted" in message
            outcomes.append("error")
        # the next save cleans up whatever the killed one left, and works
        save_model_store(stores["new"], target)
        assert stale_dir_temps(target) == [] and os.listdir(work) == ["model"]
        assert sorted(os.listdir(target)) == [
            "class_means.parquet",
            "coef.parquet",
            "genes.parquet",
            "identity.parquet",
            "intervals.parquet",
            "model.json",
            "train_features.parquet",
            "train_targets.parquet",
            "train_types.parquet",
        ]
        assert _same(load_model_store(target), stores["new"])
    else:
        pytest.fail("the save never completed")
    # nine files, the swap (one exchange, or two renames), then the old folder removed
    swap = ["exchange"] if exchange else ["exchange", "rename", "rename"]
    assert steps == ["replace"] * 9 + [*swap, "rmtree"]
    if exchange:  # the old store until the exchange, the new one from then on
        assert outcomes == ["old"] * 9 + ["new", "new"]
    else:  # between the two renames there is no store, and load says why
        assert outcomes == ["old"] * 10 + ["error", "new", "new"]


@pytest.mark.parametrize("swap_deletes_old_files", [False, True])
def test_a_save_during_a_load_gives_one_whole_store(
    stores, tmp_path, monkeypatch, swap_deletes_old_files
):
    """A save lands between the load's reads of model.json and coef.parquet: the load
    reads the old folder through its open handle, or, once that folder's files are gone,
    reads the new folder whole."""
    from ephys2expr.model.store import _format as store_format

    target = _store_dir(tmp_path, stores["old"])
    read_at = store_format._read_at
    saved = []

    def racing_read(fd, name, limit, where):
        if name == "coef.parquet" and not saved:
            saved.append(True)
            if swap_deletes_old_files:
                save_model_store(stores["new"], target)
            else:  # the swap done, the old folder not yet deleted
                with pytest.MonkeyPatch.context() as mp:
                    mp.setattr(shutil, "rmtree", lambda *a, **k: None)
                    save_model_store(stores["new"], target)
        return read_at(fd, name, limit, where)

    monkeypatch.setattr(store_format, "_read_at", racing_read)
    got = load_model_store(target)
    assert _same(got, stores["new" if swap_deletes_old_files else "old"])


def test_a_store_mixed_by_hand_is_detected(stores, tmp_path):
    """Old-style mixing (a table replaced on its own) is caught by the md5 in model.json."""
    old = _store_dir(tmp_path, stores["old"], "old")
    new = _store_dir(tmp_path, stores["new"], "new")
    shutil.copy(new / "coef.parquet", old / "coef.parquet")
    with pytest.raises(InputError) as err:
        load_model_store(old)
    message = str(err.value)
    assert message.startswith(str(old)) and "\n" not in message
    assert "coef.parquet does not match the md5 recorded in model.json" in message
    assert "retrain" in message


def test_the_stale_temp_files_of_schema_1_stores_are_removed(stores, tmp_path):
    """A schema-1 store killed mid-save (issue #12 case 1) is replaced whole, with its 0-byte
    temp file, and is refused on load until then: it cannot be told from a mix."""
    target = _store_dir(tmp_path, stores["old"])
    meta = json.loads((target / "model.json").read_text())
    meta["schema_version"] = 1
    del meta["files"]
    (target / "model.json").write_text(json.dumps(meta))
    (target / ".genes.parquet.abc123.tmp").write_bytes(b"")
    with pytest.raises(InputError, match="schema_version 1 .* retrain"):
        load_model_store(target)
    save_model_store(stores["new"], target)
    assert sorted(os.listdir(target)) == [
        "class_means.parquet",
        "coef.parquet",
        "genes.parquet",
        "identity.parquet",
        "intervals.parquet",
        "model.json",
        "train_features.parquet",
        "train_targets.parquet",
        "train_types.parquet",
    ]
    assert _same(load_model_store(target), stores["new"])


def test_save_refuses_to_replace_a_folder_that_is_not_a_store(stores, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "cells.csv").write_text("cell_id\n1\n")
    with pytest.raises(InputError, match="holds 'cells.csv', which is not part of a model store"):
        save_model_store(stores["new"], data)
    assert os.listdir(data) == ["cells.csv"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="exists and is not a folder"):
        save_model_store(stores["new"], tmp_path / "file")


def test_a_symlinked_store_folder_is_refused_and_its_target_untouched(stores, tmp_path):
    """A link where a store goes (planted, or a user's) never redirects the write into its
    target: one line, and the target folder keeps every byte (#32)."""
    real = _store_dir(tmp_path, stores["old"], "real")
    before = {p.name: p.read_bytes() for p in real.iterdir()}
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(InputError, match="link: is a symbolic link .* never written through"):
        save_model_store(stores["new"], tmp_path / "link")
    assert (tmp_path / "link").is_symlink()
    assert {p.name: p.read_bytes() for p in real.iterdir()} == before
    assert _same(load_model_store(real), stores["old"])


def test_dvc_rerun_gives_identical_bytes_and_a_clean_git_status(stores, tmp_path):
    """`dvc repro -f` of a stage writing the store: same bytes, nothing for git to commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    src = _store_dir(tmp_path, stores["new"], "source")
    (repo / "write_store.py").write_text(
        "import sys\nfrom ephys2expr.model.store import load_model_store, save_model_store\n"
        f"save_model_store(load_model_store({str(src)!r}), 'data/model')\n"
    )
    stage = {"cmd": "python write_store.py", "deps": ["write_store.py"], "outs": ["data/model"]}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"store": stage}}))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }

    def sh(*cmd):
        res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout

    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    sh("dvc", "repro", "-q")
    first = {p.name: p.read_bytes() for p in (repo / "data" / "model").iterdir()}
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "store")
    sh("dvc", "repro", "-f", "-q")
    again = {p.name: p.read_bytes() for p in (repo / "data" / "model").iterdir()}
    assert again == first and sorted(first) == [
        "class_means.parquet",
        "coef.parquet",
        "genes.parquet",
        "identity.parquet",
        "intervals.parquet",
        "model.json",
        "train_features.parquet",
        "train_targets.parquet",
        "train_types.parquet",
    ]
    assert sh("git", "status", "--porcelain") == ""
    assert [p.name for p in (repo / "data").iterdir() if p.name.startswith(".model")] == []
    assert "up to date" in sh("dvc", "status")


# ------------------------------------------------------------------ checked on load


def _edit_meta(key, value):
    def edit(d: Path):
        meta = json.loads((d / "model.json").read_text())
        meta[key] = value(meta[key]) if callable(value) else value
        (d / "model.json").write_text(json.dumps(meta))

    return edit


def _raw_meta(text: bytes):
    def edit(d: Path):
        (d / "model.json").write_bytes(text)

    return edit


def _edit_table(name, change):
    """Rewrite a table and record its new md5: a store written consistently, but wrong."""

    def edit(d: Path):
        from ephys2expr.io import file_checksum

        table = pd.read_parquet(d / name)
        change(table)
        table.to_parquet(d / name)
        meta = json.loads((d / "model.json").read_text())
        md5, size = file_checksum(d / name)
        meta["files"][name] = {"md5": md5, "bytes": size}
        (d / "model.json").write_text(json.dumps(meta))

    return edit


def _nan_at(col, row=3):
    def change(t):
        t.iloc[row, t.columns.get_loc(col)] = np.nan

    return change


def _set_col(col, value):
    def change(t):
        t[col] = value

    return change


def _deep(depth):
    return b'{"schema_version": 2, "provenance": ' + b"[" * depth + b"]" * depth + b"}"


_BROKEN = {
    "nan scaler_mean": (
        _edit_meta("scaler_mean", lambda v: [float("nan"), *v[1:]]),
        "scaler_mean[0] is nan, expected a finite number",
    ),
    "string scaler_mean": (
        _edit_meta("scaler_mean", lambda v: [str(x) for x in v]),
        "scaler_mean[0] is '",
    ),
    "null feature_min": (
        _edit_meta("feature_min", lambda v: [None, *v[1:]]),
        "feature_min[0] is None",
    ),
    "zero scaler_scale": (
        _edit_meta("scaler_scale", lambda v: [0.0, *v[1:]]),
        "scaler_scale of 'rin' is not positive",
    ),
    "min above max": (
        _edit_meta("feature_min", lambda v: [1e9, *v[1:]]),
        "feature_min of 'rin' is above its feature_max",
    ),
    "short feature_max": (
        _edit_meta("feature_max", lambda v: v[:-1]),
        "feature_max must be a list of 11 numbers, got 10 values",
    ),
    "schema 1.0": (_edit_meta("schema_version", 1.0), "schema_version 1.0 is not an integer"),
    "schema true": (_edit_meta("schema_version", True), "schema_version True is not an integer"),
    "schema '2'": (_edit_meta("schema_version", "2"), "schema_version '2' is not an integer"),
    "schema 99": (_edit_meta("schema_version", 99), "schema_version 99, this code reads [2, 3"),
    "absurd n_genes": (_edit_meta("n_genes", 10**12), "n_genes is 1000000000000, expected"),
    "wrong n_genes": (_edit_meta("n_genes", 5), "n_genes 5 but coef has"),
    "features not names": (_edit_meta("features", 3), "features must be a list of names"),
    "no files": (_edit_meta("files", {}), "files must describe exactly"),
    "bad md5": (
        _edit_meta("files", lambda f: {**f, "coef.parquet": {"md5": "x", "bytes": 1}}),
        "files.coef.parquet.md5 is not an md5 hex digest",
    ),
    "json list": (_raw_meta(b"[1, 2]"), "expected a JSON object, got a list"),
    "not utf-8": (_raw_meta(b'{"a": "\xff\xfe"}'), "not UTF-8 text (byte 7)"),
    "not json": (_raw_meta(b"{'a': 1}"), "unreadable JSON (Expecting property name"),
    "nested 200,000 deep": (_raw_meta(_deep(200_000)), "JSON nested too deeply"),
    "nested 100 deep": (_raw_meta(_deep(100)), "nested deeper than 64 levels"),
    "huge integer": (_raw_meta(b'{"n": ' + b"9" * 5000 + b"}"), "unreadable JSON (Exceeds"),
    "model.json too big": (_raw_meta(b" " * (MAX_META_BYTES + 1)), "model.json is larger than"),
    "nan coef": (_edit_table("coef.parquet", _nan_at("tau")), "coef column 'tau' is nan at '"),
    "string coef": (
        _edit_table("coef.parquet", _set_col("rmp", "x")),
        "coef column 'rmp' is object, not numbers",
    ),
    "inf intercept": (
        _edit_table("genes.parquet", _nan_at("intercept")),
        "genes column 'intercept' is nan at '",
    ),
    "negative alpha": (
        _edit_table("genes.parquet", _set_col("alpha", -1.0)),
        "genes column 'alpha' has a negative value",
    ),
    "bool alpha": (
        _edit_table("genes.parquet", _set_col("alpha", True)),
        "genes column 'alpha' is bool, not numbers",
    ),
    "nan coef, hash not updated": (
        lambda d: (
            _nan_at("tau")(t := pd.read_parquet(d / "coef.parquet"))
            or t.to_parquet(d / "coef.parquet")
        ),
        "re:coef column 'tau' is nan at '.*; coef.parquet does not match the md5",
    ),
    "truncated coef": (
        lambda d: (d / "coef.parquet").write_bytes((d / "coef.parquet").read_bytes()[:500]),
        "re:coef.parquet is not a readable Parquet table .*; coef.parquet does not match the md5",
    ),
    "coef missing": (lambda d: (d / "coef.parquet").unlink(), "coef.parquet is missing"),
    "coef is a folder": (
        lambda d: ((d / "coef.parquet").unlink(), (d / "coef.parquet").mkdir()),
        "coef.parquet is not a regular file",
    ),
    "no model.json": (lambda d: (d / "model.json").unlink(), "not a model store (no model.json"),
    "store is a file": (
        lambda d: (shutil.rmtree(d), d.write_text("x")),
        "not a model store (no such folder",
    ),
}


@pytest.mark.parametrize("case", list(_BROKEN))
def test_a_broken_store_is_one_line_naming_it(stores, tmp_path, case):
    breaker, expected = _BROKEN[case]
    target = _store_dir(tmp_path, stores["old"])
    breaker(target)
    with pytest.raises(InputError) as err:
        load_model_store(target)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(target)), message
    if expected.startswith("re:"):
        assert re.search(expected[3:], message), message
    else:
        assert expected in message, message


def got_identity_none(target) -> bool:
    return load_model_store(target).identity is None


def test_load_reads_the_real_store_layout(stores, tmp_path):
    """Round trip; model.json records the tables' md5 and sizes (the training rows' too,
    schema 5; the intervals' and the identity tables, empty for a store without them,
    schema 6) and its own values' md5 (schema 4)."""
    from ephys2expr.io import json_md5

    target = _store_dir(tmp_path, stores["old"])
    meta = json.loads((target / "model.json").read_text())
    tables = {
        "coef.parquet",
        "genes.parquet",
        "train_features.parquet",
        "intervals.parquet",
        "identity.parquet",
        "class_means.parquet",
        "train_targets.parquet",
        "train_types.parquet",
    }
    assert meta["schema_version"] == 6 and set(meta["files"]) == tables
    assert meta["identity"] is None and got_identity_none(target)
    assert meta["meta_md5"] == json_md5({k: v for k, v in meta.items() if k != "meta_md5"})
    assert meta["files"]["coef.parquet"]["bytes"] == (target / "coef.parquet").stat().st_size
    got = load_model_store(target)
    assert _same(got, stores["old"]) and got.features == CORE_FEATURES
    np.testing.assert_array_equal(got.primary.feature_min, stores["old"].primary.feature_min)


def test_a_store_with_non_finite_values_cannot_be_saved(stores, tmp_path):
    coef = stores["old"].primary.coef.copy()
    coef.iloc[0, 0] = np.inf
    with pytest.raises(InputError, match="coef column 'rin' is inf at"):
        with_primary(stores["old"], coef=coef)
    assert not (tmp_path / "model").exists()


# ------------------------------------------------------------------ feature sets (schema 3)


@pytest.fixture(scope="module")
def multi(raw_dir) -> ModelStore:
    """A store of three feature sets of the real 20-type table: full, without tau/cap, and
    Cadwell's seven (as the train stage joins them)."""
    features, targets, _ = small_real_inputs(raw_dir, n_variable=60, n_flat=20)
    models = []
    for name, drop in (
        ("full", []),
        ("no_tau_cap", ["tau", "cap"]),
        ("cadwell", ["rheo", "maxfreq", "cap", "adratio"]),
    ):
        cols = [f for f in features.columns if f not in drop]
        est = MultiGeneElasticNet(penalty="lasso", alpha=0.05).fit(
            features[cols].to_numpy(), targets.T.to_numpy()
        )
        models.append(
            store_from_estimator(
                est, features[cols], targets.index, provenance={"params": {}}, feature_set=name
            )
        )
    return join_feature_sets(models)


def test_feature_sets_round_trip_in_one_store(multi, tmp_path):
    """Every set comes back with its own features, coefficients and scaler; the left-out
    features are exact zeros in the one coef table; the primary keeps the provenance."""
    target = _store_dir(tmp_path, multi)
    got = load_model_store(target)
    assert list(got.feature_sets) == ["full", "no_tau_cap", "cadwell"]
    for name, model in multi.feature_sets.items():
        back = got.model(name)
        assert back.features == model.features and _same_values(back, model)
    coef = pd.read_parquet(target / "coef.parquet")
    assert list(coef.index.names) == ["feature_set", "gene"]
    assert (coef.loc["no_tau_cap", ["tau", "cap"]].to_numpy() == 0).all()
    assert got.provenance == multi.provenance  # the store's: a FeatureSet holds none
    # a subset model differs from the full one: it is a refit, not the full model's columns
    assert not np.allclose(
        got.model("no_tau_cap").coef, got.primary.coef[got.model("no_tau_cap").features]
    )


def _same_values(a: ModelStore, b: ModelStore) -> bool:
    return (
        a.coef.equals(b.coef)
        and a.genes.equals(b.genes)
        and np.array_equal(a.scaler_mean, b.scaler_mean)
        and np.array_equal(a.feature_max, b.feature_max)
    )


def test_asking_for_a_set_the_store_lacks_lists_the_sets(multi):
    with pytest.raises(InputError, match=r"no feature set 'x' \(the store offers full \(rin"):
        multi.model("x")


def _set_nonzero(name, feature):
    def change(t):
        t.loc[(name, t.index.get_level_values(1)[0]), feature] = 0.5

    return change


_BROKEN_SETS = {
    "left-out feature used": (
        _edit_table("coef.parquet", _set_nonzero("no_tau_cap", "tau")),
        "feature set 'no_tau_cap' leaves out 'tau' but has non-zero",
    ),
    "set missing from tables": (
        _edit_meta("feature_sets", lambda v: [*v, {**v[1], "name": "extra"}]),
        "coef table holds feature sets ['full', 'no_tau_cap', 'cadwell'], model.json lists",
    ),
    "primary not full": (
        _edit_meta("feature_sets", lambda v: [v[1], v[0], v[2]]),
        "feature_sets[0]: only the first (primary) set uses every feature",
    ),
    "set with unknown feature": (
        _edit_meta("feature_sets", lambda v: [v[0], {**v[1], "features": ["rin", "x"]}, v[2]]),
        "feature_sets[1].features ['rin', 'x'] are not store features",
    ),
    "set scaler too short": (
        _edit_meta("feature_sets", lambda v: [v[0], {**v[1], "scaler_mean": [1.0]}, v[2]]),
        "feature_sets[1].scaler_mean must be a list of 9 numbers",
    ),
    "names repeat": (
        _edit_meta("feature_sets", lambda v: [v[0], v[1], {**v[2], "name": "full"}]),
        "names repeat",
    ),
    "schema 3 without feature_sets": (
        lambda d: _edit_meta("feature_sets", None)(d) or _drop_key(d, "feature_sets"),
        "missing keys ['feature_sets']",
    ),
}


def _drop_key(d: Path, key: str) -> None:
    meta = json.loads((d / "model.json").read_text())
    del meta[key]
    (d / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("case", list(_BROKEN_SETS))
def test_a_broken_feature_set_is_one_line_naming_the_store(multi, tmp_path, case):
    breaker, expected = _BROKEN_SETS[case]
    target = _store_dir(tmp_path, multi)
    breaker(target)
    with pytest.raises(InputError) as err:
        load_model_store(target)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(target)), message
    assert expected in message, message


def _without_train_rows(target: Path) -> dict:
    """``model.json`` of the store in ``target`` as schema 4 wrote it: its
    ``train_features.parquet`` deleted (the caller writes the returned meta back)."""
    meta = _without_intervals(target)
    (target / "train_features.parquet").unlink()
    del meta["files"]["train_features.parquet"]
    meta["schema_version"] = 4
    return meta


def _without_intervals(target: Path) -> dict:
    """``model.json`` of the store in ``target`` as schema 5 wrote it (the caller writes the
    returned meta back)."""
    return as_schema_5(target)


def test_a_schema_5_store_loads_without_intervals(stores, tmp_path):
    """Stores written before the prediction intervals still load (predict then writes no
    layers lower/upper, and says so)."""
    from ephys2expr.io import json_md5

    target = _store_dir(tmp_path, stores["old"])
    meta = _without_intervals(target)
    meta.pop("meta_md5")
    meta["meta_md5"] = json_md5(meta)
    (target / "model.json").write_text(json.dumps(meta))
    got = load_model_store(target)
    assert got.primary.intervals is None and stores["old"].primary.intervals is not None
    assert _same(got, stores["old"])


def test_a_schema_2_store_loads_as_its_one_set(stores, tmp_path):
    """Stores written before feature sets (schema 2: tables indexed by gene alone, no
    ``feature_sets``) still load, as a store of one set named ``full``."""
    from ephys2expr.io import file_checksum

    target = _store_dir(tmp_path, stores["old"])
    meta = _without_train_rows(target)
    for name in ("coef.parquet", "genes.parquet"):
        table = pd.read_parquet(target / name).xs("full", level="feature_set")
        table.to_parquet(target / name)
        md5, size = file_checksum(target / name)
        meta["files"][name] = {"md5": md5, "bytes": size}
    del meta["feature_sets"]
    meta["schema_version"] = 2
    (target / "model.json").write_text(json.dumps(meta))
    got = load_model_store(target)
    assert list(got.feature_sets) == ["full"] and _same(got, stores["old"])


def test_every_prediction_is_a_possible_log2_expression(stores):
    """Clipped where it is made: never below 0 on the log2(x + 1) scale, never above 10^6
    per million; an overflow stays non-finite (the writers refuse it)."""
    from ephys2expr.features import PLAUSIBLE_RANGE
    from ephys2expr.model.ood import bound_features
    from ephys2expr.model.store import EXPRESSION_RANGE, linear_predict

    store = stores["new"]
    edges = pd.DataFrame(
        [[PLAUSIBLE_RANGE[f][i] for f in store.features] for i in (0, 1)], columns=store.features
    )  # cells at the edges of the plausible ranges
    linear = linear_predict(*store.primary.prediction_terms(), edges.to_numpy(float), clip=False)
    assert linear.min() < 0 and linear.max() > EXPRESSION_RANGE[1]  # what a line would say
    for dtype in (np.float64, np.float32):
        got = linear_predict(*store.primary.prediction_terms(dtype=dtype), edges.to_numpy(float)).T
        assert got.min() == 0.0 and got.max() == dtype(EXPRESSION_RANGE[1])
        inside = (linear.T > 0) & (linear.T < EXPRESSION_RANGE[1])
        np.testing.assert_allclose(got[inside], linear.T[inside], rtol=1e-5)
        # a store's prediction first moves a cell beyond the training range into it
        moved = bound_features(
            edges.to_numpy(float),
            store.primary.scaler_mean,
            store.primary.feature_min,
            store.primary.feature_max,
        )
        want = linear_predict(*store.primary.prediction_terms(dtype=dtype), moved).T
        np.testing.assert_allclose(store.primary.predict(edges, dtype=dtype), want, rtol=1e-6)
        assert (want > 0).any() and (want < EXPRESSION_RANGE[1]).all()
    block = np.array([[-1.0, np.inf, np.nan, 25.0]])
    clipped = linear_predict(np.eye(1), np.zeros((1, 1)), np.zeros(1), block.T)
    np.testing.assert_array_equal(clipped.ravel(), [0.0, np.inf, np.nan, EXPRESSION_RANGE[1]])


# ------------------------------------------------------------------ issue #25: model.json, FIFO
def test_an_edited_model_json_is_detected_and_a_reformatted_one_loads(stores, tmp_path):
    """Raising ``feature_max`` in model.json would silently change which cells are flagged
    as extrapolated; schema 4 records the md5 of model.json's own values."""
    target = _store_dir(tmp_path, stores["old"])
    meta = json.loads((target / "model.json").read_text())
    (target / "model.json").write_text(json.dumps(meta))  # other layout, same values: fine
    assert _same(load_model_store(target), stores["old"])
    meta["feature_max"][0] = meta["feature_max"][0] * 10  # a valid value, but not trained
    (target / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    message = raises_one_line(
        "model.json does not match the meta_md5 it records", load_model_store, target
    )
    assert message.startswith(f"{target}: ") and message.endswith("retrain it (dvc repro train)")


def test_a_schema_3_store_still_loads_and_says_to_retrain(stores, tmp_path, caplog):
    """Stores written before meta_md5 keep working (their tables are still verified): a
    user's predict does not break on merge; a log line says model.json is not verified."""
    target = _store_dir(tmp_path, stores["old"])
    meta = _without_train_rows(target)
    meta["schema_version"] = 3
    del meta["meta_md5"]
    (target / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    with caplog.at_level("WARNING", logger="ephys2expr"):
        assert _same(load_model_store(target), stores["old"])
    assert "schema 3" in caplog.text and "retrain it (dvc repro train)" in caplog.text
    shutil.copy(_store_dir(tmp_path, stores["new"], "new") / "coef.parquet", target)
    raises_one_line("coef.parquet does not match the md5", load_model_store, target)


@pytest.mark.parametrize("name", ["coef.parquet", "model.json"])
def test_a_fifo_in_the_store_is_refused_without_blocking(stores, tmp_path, name):
    """A named pipe under a store file's name blocked the loader forever (open waits for a
    writer); now only regular files are opened (symlinks to them are fine: DVC's cache)."""
    target = _store_dir(tmp_path, stores["old"])
    (target / name).unlink()
    os.mkfifo(target / name)
    raises_one_line(
        re.escape(f"{target}: {name} is not a regular file (a named pipe)"),
        load_model_store,
        target,
    )
    linked = _store_dir(tmp_path, stores["old"], "linked")
    real = tmp_path / "cache" / "coef"
    real.parent.mkdir()
    shutil.move(linked / "coef.parquet", real)
    (linked / "coef.parquet").symlink_to(real)
    assert _same(load_model_store(linked), stores["old"])
