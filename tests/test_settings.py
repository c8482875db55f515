"""Each setting is defined once: params.yaml holds exactly the settings objects' keys and
values, every stage builds its settings the same way, and bad values are one-line errors."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ephys2expr.errors import InputError
from ephys2expr.settings import Settings, build_settings, read_params
from tests.helpers import assert_one_line_exit_2, raises_one_line

ROOT = Path(__file__).resolve().parent.parent


def _reference_script():
    """scripts/settings_reference.py: the registry of settings objects and the generated
    reference page (docs/settings.md)."""
    spec = importlib.util.spec_from_file_location(
        "settings_reference", ROOT / "scripts" / "settings_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REFERENCE = _reference_script()
SETTINGS = REFERENCE.SETTINGS
settings_class = REFERENCE.settings_class


def test_the_settings_reference_page_is_current():
    """docs/settings.md is what the settings objects' help texts give (regenerate it with
    python scripts/settings_reference.py), so params.yaml can stay short: the values, a
    comment where a value is a choice, the small sections as flow mappings."""
    assert (ROOT / "docs" / "settings.md").read_text() == REFERENCE.reference()
    text = (ROOT / "params.yaml").read_text()
    assert len(text.splitlines()) <= 80, "params.yaml: read in a minute"
    assert "docs/settings.md" in text.split("\n", 2)[1], "the header points to the reference"


def test_dvc_exp_run_set_param_rewrites_exactly_the_values_set(tmp_path):
    """``dvc exp run -S`` rewrites params.yaml with DVC's own code (this function, ruamel
    round trip): a key of a flow-mapping section (``executor``, ``cells``, ``features``), of a
    block section and a new ``train_<source>`` key each get their value, every other value
    stays (DVC re-wraps flow collections in its own style: docs/pipeline.md), and the
    stages build their settings from the result."""
    import copy
    import shutil

    import yaml
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    before = yaml.safe_load(path.read_text())
    apply_overrides(
        path,
        [
            "features.n_jobs=3",
            "executor.kind=local",
            "cells.min_features=4",
            "train.alpha=0.05",
            "+train_rds.n_folds=3",
        ],
    )
    expected = copy.deepcopy(before)
    expected["features"]["n_jobs"] = 3
    expected["executor"]["kind"] = "local"
    expected["cells"]["min_features"] = 4
    expected["train"]["alpha"] = 0.05
    expected["train_rds"] = {"n_folds": 3}
    assert yaml.safe_load(path.read_text()) == expected
    assert settings_class("features").from_params(path).n_jobs == 3
    assert settings_class("executor").from_params(path).kind == "local"
    built = settings_class("train").from_params(path, source="rds")
    assert (built.alpha, built.n_folds) == (0.05, 3)


def per_source_sections(params: dict) -> list[str]:
    """The train_<source> sections params.yaml must have: one per prepare.sources entry."""
    return [f"train_{source}" for source in params["prepare"]["sources"]]


@pytest.mark.parametrize("section", sorted(SETTINGS))
def test_params_yaml_holds_exactly_the_settings_and_their_defaults(section):
    cls = settings_class(section)
    assert cls.SECTION == section
    params = read_params(ROOT / "params.yaml")
    expected = sorted([*SETTINGS, *per_source_sections(params)])
    assert sorted(params) == expected, (
        "params.yaml sections = the settings objects + train_<source>"
    )
    assert list(params[section]) == cls.keys(), "same keys, same order as the settings object"
    from_yaml = cls.from_params(ROOT / "params.yaml")
    # the committed params.yaml is the defaults: no second default anywhere
    assert from_yaml.as_dict() == cls().as_dict()
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help"), f"{section}.{f.name} has no help text"


def test_per_source_sections_hold_no_second_default():
    """A train_<source> section holds only overrides: in the committed params.yaml none, so
    every source trains with train's values (the defaults); dvc.yaml's train@<source> lists
    train and train_<source>, so a change to one source reruns that source only."""
    import yaml

    params = read_params(ROOT / "params.yaml")
    train_cls = settings_class("train")
    assert train_cls.PER_SOURCE
    for source in params["prepare"]["sources"]:
        section = f"train_{source}"
        assert params[section] == {}, f"{section} overrides defaults in params.yaml"
        built = train_cls.from_params(ROOT / "params.yaml", source=source)
        assert built.as_dict() == train_cls().as_dict()
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]
    assert stage["foreach"] == "${prepare.sources}"
    assert stage["do"]["params"][:2] == ["train", "train_${item}"]
    assert "--source ${item}" in stage["do"]["cmd"]


def test_a_source_section_overrides_only_its_keys_and_errors_name_it():
    train_cls = settings_class("train")
    params = {"train": {"n_folds": 4, "alpha": 0.5}, "train_mine": {"n_folds": 3}}
    mine = train_cls.from_params(params, source="mine")
    other = train_cls.from_params(params, source="other")  # no section: train's values
    assert (mine.n_folds, mine.alpha) == (3, 0.5) and (other.n_folds, other.alpha) == (4, 0.5)
    assert train_cls.from_params(params).n_folds == 4  # no source: the section is not read
    assert mine.where("n_folds") == "params.yaml train_mine.n_folds"
    assert mine.where("alpha") == "params.yaml train.alpha"
    # the same checks, naming the key where the bad value is
    build = train_cls.from_params
    for section, match in (
        ({"n_folds": 1}, "params.yaml train_mine.n_folds: 1 must be >= 2"),
        ({"nfolds": 3}, "params.yaml train_mine.nfolds: unknown setting"),
        ({"seed": "x"}, "params.yaml train_mine.seed: 'x' is not a whole number"),
        ({"alpha_min": 20.0}, "params.yaml train_mine.alpha_min: 20.0 is larger than alpha_max"),
        ([1], "params.yaml train_mine: expected a mapping"),
    ):
        raises_one_line(match, build, {"train": {}, "train_mine": section}, source="mine")
    # --set: key=..., train.key=... and train_<source>.key=... all set this source's value
    exec_cls = settings_class("executor")
    for key in ("n_folds", "train.n_folds", "train_mine.n_folds"):
        built, _ = build_settings(params, [f"{key}=2"], train_cls, exec_cls, source="mine")
        assert built.n_folds == 2 and built.where("n_folds") == "params.yaml train.n_folds"
    raises_one_line(
        "section 'train_other'",
        build_settings,
        params,
        ["train_other.n_folds=2"],
        train_cls,
        exec_cls,
        source="mine",
    )
    # a copy (cv: auto resolved) still knows where its values came from
    assert mine.replace(cv="group_kfold").where("n_folds") == "params.yaml train_mine.n_folds"
    # the executor has no per-source sections: a source changes nothing there
    assert not exec_cls.PER_SOURCE
    assert exec_cls.from_params({"executor_mine": {"n_workers": 9}}, source="mine").n_workers == 2


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


# Parameter names that mean a setting under another name (constructor -> settings key).
SYNONYMS = {
    "tolerance": "extrapolation_tolerance",
    "inner_cv": "inner_folds",
    "random_state": "seed",
}
# The settings sections a package folder's code may take defaults of.
FOLDER_SECTIONS = {
    "model": ["train"],
    "train": ["train", "executor"],
    "predict": ["predict", "executor"],
    "prepare": ["prepare"],
    "validate": ["validate"],
    "executor": ["executor"],
    "recordings": ["features"],
}
# Same name, another meaning: joint_space(reference=...) is which side a space is built
# from, not validate.reference (which measured data set is read).
# OutputSet(inputs=...) are the files a run reads, not predict.inputs (which tables).
NOT_A_SETTING = {
    ("ephys2expr.validate.embedding", "joint_space", "reference"),
    ("ephys2expr.predict.outputs.output_set", "OutputSet", "inputs"),
    ("ephys2expr.predict.outputs.output_set", "OutputSet.__init__", "inputs"),
}


def _defaults_in_package():
    """(module, function, parameter, default, folder) of every function and class defined
    in the package whose parameter has a default other than None."""
    import inspect
    import pkgutil

    import ephys2expr

    for info in pkgutil.walk_packages(ephys2expr.__path__, "ephys2expr."):
        module = importlib.import_module(info.name)
        parts = info.name.split(".")
        folder = parts[1]
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != info.name:
                continue
            if inspect.isclass(obj) and issubclass(obj, Settings):
                continue  # the settings objects hold the defaults
            if inspect.isclass(obj):
                targets = [(name, obj.__init__)] + [
                    (f"{name}.{m}", f) for m, f in vars(obj).items() if inspect.isfunction(f)
                ]
            elif inspect.isfunction(obj):
                targets = [(name, obj)]
            else:
                continue
            for label, fn in targets:
                try:
                    params = inspect.signature(fn).parameters.values()
                except (TypeError, ValueError):
                    continue
                for p in params:
                    if p.default is not inspect.Parameter.empty and p.default is not None:
                        yield info.name, label, p.name, p.default, folder


def test_every_default_that_is_a_setting_is_the_settings_default():
    """A constructor or function default named like a setting of its folder's stage must be
    that setting's default (or absent): one default per setting, everywhere."""
    defaults = {s: settings_class(s)().as_dict() for s in SETTINGS}
    checked, wrong = [], []
    for module, fn, param, value, folder in _defaults_in_package():
        key = SYNONYMS.get(param, param)
        for section in FOLDER_SECTIONS.get(folder, []):
            if key in defaults[section] and (module, fn, param) not in NOT_A_SETTING:
                checked.append(f"{module}.{fn}({param})")
                if value != defaults[section][key]:
                    wrong.append(f"{module}.{fn}({param}={value!r}) != {section}.{key}")
    assert wrong == []
    # the screen takes both of its defaults from the predict settings
    assert "ephys2expr.predict.inputs.screen.CellScreen(missing)" in checked
    assert "ephys2expr.predict.inputs.screen.CellScreen(tolerance)" in checked


def test_the_estimator_has_no_default_of_a_train_setting():
    import inspect

    from ephys2expr.model.estimator import MultiGeneElasticNet

    sig = inspect.signature(MultiGeneElasticNet)
    for name in ("penalty", "alpha"):
        assert sig.parameters[name].default is inspect.Parameter.empty
    for name in ("l1_ratio", "alphas", "inner_cv", "random_state"):
        assert sig.parameters[name].default is None  # given by TrainSettings.estimator()
    from ephys2expr.train.settings import TrainSettings

    s = TrainSettings(penalty="elasticnet", l1_ratio=0.3)
    est = s.estimator()
    assert (est.l1_ratio, est.inner_cv, est.random_state) == (0.3, s.inner_folds, s.seed)
    np.testing.assert_array_equal(est.alphas, s.alphas)


def test_cadwell_features_are_defined_once():
    from ephys2expr.features import CADWELL_FEATURES
    from ephys2expr.readers.cadwell import CADWELL_FIELDS
    from ephys2expr.train.settings import TrainSettings

    assert sorted(CADWELL_FIELDS.values()) == sorted(CADWELL_FEATURES)
    source = ["rin", "rmp", "apthr", "apamp", "aphw", "tau", "ahpamp", "rheo", "maxfreq", "cap"]
    assert TrainSettings().resolve_feature_sets(source)["cadwell"] == CADWELL_FEATURES
    bad = TrainSettings.from_params({"train": {"feature_sets": {"full": [], "cadwell": ["rin"]}}})
    with pytest.raises(InputError, match=r"train.feature_sets.cadwell: keeps .* not Cadwell"):
        bad.resolve_feature_sets(source)


# ------------------------------------------------------------------ issue #25: NaN settings
@pytest.mark.parametrize("penalty", ["lasso", "ridge", "elasticnet"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (".nan", "nan is not a finite number"),
        (".inf", "inf is not a finite number"),
        ("-.inf", "-inf is not a finite number"),
        ("1.5", "1.5 is not in [0, 1]"),
        ("-0.1", "-0.1 is not in [0, 1]"),
    ],
)
def test_l1_ratio_is_checked_whatever_the_penalty(tmp_path, penalty, value, expected):
    """``train.l1_ratio: .nan`` with lasso was accepted and stored as NaN in the model
    store's provenance; now every penalty checks it, from params.yaml and from --set."""
    from stages.train import app as train_app

    params = tmp_path / "params.yaml"
    params.write_text(f"train:\n  penalty: {penalty}\n  l1_ratio: {value}\n")
    where = "params.yaml train.l1_ratio: "
    raises_one_line(re.escape(where + expected), settings_class("train").from_params, params)
    raises_one_line(
        re.escape(where + expected),
        settings_class("train").from_params,
        None,
        [f"penalty={penalty}", f"l1_ratio={value}"],
    )
    res = CliRunner().invoke(train_app, ["--params", str(params), "--model-dir", str(tmp_path)])
    assert_one_line_exit_2(res, where + expected)


def test_l1_ratio_zero_is_for_lasso_and_ridge_only():
    train_cls = settings_class("train")
    assert train_cls(penalty="lasso", l1_ratio=0.0).l1_ratio == 0.0
    raises_one_line(
        r"0.0 is not in \(0, 1\] \(elasticnet\)", train_cls, penalty="elasticnet", l1_ratio=0.0
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("train", "alpha"),  # float | str ('auto')
        ("train", "alpha_min"),
        ("train", "fdr_q"),
        ("predict", "extrapolation_tolerance"),
        ("prepare", "min_max_log2"),
        ("validate", "cv_r2_threshold"),
    ],
)
@pytest.mark.parametrize("value", [".nan", ".inf", "nan"])
def test_no_number_setting_accepts_nan_or_infinity(section, key, value):
    expected = f"params.yaml {section}.{key}: {'nan' if 'nan' in value else 'inf'}"
    message = raises_one_line(
        re.escape(expected), settings_class(section).from_params, {}, [f"{section}.{key}={value}"]
    )
    assert message.endswith("is not a finite number"), message
