"""Shared assertions of the suite: every bad input is ONE line, naming what is wrong."""

from __future__ import annotations

import pytest

from ephys2expr.errors import InputError


def raises_one_line(match: str, fn, *args, **kwargs) -> str:
    """Call ``fn``; assert it raises :class:`InputError` matching ``match`` in one line."""
    with pytest.raises(InputError, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def assert_one_line_exit_2(result, *expected: str) -> str:
    """A CLI run (typer's ``CliRunner`` result) that ended with one line and exit code 2,
    its output holding every text of ``expected``."""
    output = result.output.strip()
    assert result.exit_code == 2, result.output
    assert len(output.splitlines()) == 1, result.output
    for text in expected:
        assert text in output, result.output
    return output


# What schema 6 added to a model store: its tables, and model.json keys.
SCHEMA_6_TABLES = (
    "intervals.parquet",
    "identity.parquet",
    "class_means.parquet",
    "train_targets.parquet",
    "train_types.parquet",
)


def as_schema_5(folder) -> dict:
    """The ``model.json`` of the store in ``folder`` as schema 5 wrote it, its schema-6
    tables deleted (the caller edits the returned meta and writes it back with its md5)."""
    import json
    from pathlib import Path

    folder = Path(folder)
    meta = json.loads((folder / "model.json").read_text())
    for name in SCHEMA_6_TABLES:
        (folder / name).unlink()
        del meta["files"][name]
    meta.pop("intervals", None)
    meta.pop("identity", None)
    meta["schema_version"] = 5
    return meta


def predict_table(tmp_path, model_dir, cells, *extra) -> tuple:
    """Run the predict stage's CLI on ``cells`` (written to ``tmp_path/cells.csv``) with
    the store at ``model_dir``: ``(CliRunner result, path of the h5ad)``; its metrics and
    report are ``tmp_path/m.json`` and ``tmp_path/r.json``."""
    from typer.testing import CliRunner

    from stages.predict import app

    src, out = tmp_path / "cells.csv", tmp_path / "out" / "pred.h5ad"
    cells.to_csv(src)
    args = ["--model-dir", model_dir, "--input", src, "--output", out]
    args += ["--metrics", tmp_path / "m.json", "--report", tmp_path / "r.json", *extra]
    return CliRunner().invoke(app, [str(a) for a in args]), out


def with_primary(store, **changes):
    """``store`` with its primary feature set's fields ``changes`` replaced (a new store,
    checked like any: ``with_primary(store, coef=bad)`` raises what a bad table raises)."""
    import dataclasses

    primary = dataclasses.replace(store.primary, **changes)
    return dataclasses.replace(store, sets={**store.sets, primary.name: primary})


def without_set(store, name: str):
    """``store`` without its feature set ``name`` (as a store that lacks it)."""
    import dataclasses

    return dataclasses.replace(store, sets={n: s for n, s in store.sets.items() if n != name})
