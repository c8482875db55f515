"""Each setting is defined once: params.yaml holds exactly the settings objects' keys and
values, every stage builds its settings the same way, and bad values are one-line errors."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from ephys2expr.errors import InputError
from ephys2expr.settings import build_settings, read_params

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {
    "prepare": ("ephys2expr.prepare.settings", "PrepareSettings"),
    "train": ("ephys2expr.train.settings", "TrainSettings"),
    "executor": ("ephys2expr.executor", "ExecutorSettings"),
    "predict": ("ephys2expr.predict.settings", "PredictSettings"),
    "validate": ("ephys2expr.validate.settings", "ValidateSettings"),
}


def settings_class(section: str):
    module, name = SETTINGS[section]
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("section", sorted(SETTINGS))
def test_params_yaml_holds_exactly_the_settings_and_their_defaults(section):
    cls = settings_class(section)
    assert cls.SECTION == section
    params = read_params(ROOT / "params.yaml")
    assert sorted(params) == sorted(SETTINGS), "params.yaml sections = the settings objects"
    assert list(params[section]) == cls.keys(), "same keys, same order as the settings object"
    from_yaml = cls.from_params(ROOT / "params.yaml")
    # the committed params.yaml is the defaults: no second default anywhere
    assert from_yaml.as_dict() == cls().as_dict()
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help"), f"{section}.{f.name} has no help text"


@pytest.mark.parametrize("section", sorted(SETTINGS))
def test_unknown_key_is_one_line_error_naming_it(section):
    cls = settings_class(section)
    with pytest.raises(InputError, match=rf"params.yaml {section}.no_such_key: unknown"):
        cls.from_params({section: {"no_such_key": 1}})


def test_overrides_go_to_their_section_and_are_checked(tmp_path):
    train_cls, exec_cls = settings_class("train"), settings_class("executor")
    train, ex = build_settings(
        ROOT / "params.yaml", ["alpha=0.05", "executor.n_workers=3"], train_cls, exec_cls
    )
    assert train.alpha == 0.05 and ex.n_workers == 3
    assert train.penalty == train_cls().penalty
    with pytest.raises(InputError, match="params.yaml train.n_permutations"):
        build_settings(ROOT / "params.yaml", ["n_permutations=-1"], train_cls, exec_cls)
    with pytest.raises(InputError, match="section 'nosuch'"):
        build_settings(ROOT / "params.yaml", ["nosuch.key=1"], train_cls, exec_cls)
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        train_cls.from_params({}, ["alpha"])
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(InputError, match="not valid YAML"):
        train_cls.from_params(bad)


def test_whole_numbers_and_booleans_are_checked_by_type():
    train_cls = settings_class("train")
    with pytest.raises(InputError, match=r"train.n_alphas: 2.5 is not a whole number"):
        train_cls.from_params({"train": {"n_alphas": 2.5}})
    with pytest.raises(InputError, match=r"train.seed: True is not a whole number"):
        train_cls.from_params({"train": {"seed": True}})
    predict_cls = settings_class("predict")
    with pytest.raises(InputError, match=r"predict.write_h5ad: 'maybe' is not true or false"):
        predict_cls.from_params({"predict": {"write_h5ad": "maybe"}})
