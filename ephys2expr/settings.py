"""Settings: each defined once (name, default, check), built from ``params.yaml``.

Every stage has one settings dataclass (``PrepareSettings``, ``TrainSettings``,
``ExecutorSettings``, ``PredictSettings``, ``ValidateSettings``) that subclasses
:class:`Settings`. A field's default is the only default; its ``help`` metadata is the only
description; ``check()`` (called on construction) holds the only validation. The stage CLIs,
the tests and the benchmarks all build them the same way::

    settings = TrainSettings.from_params("params.yaml", overrides=["alpha=0.05"])

which reads the section named by ``SECTION``, applies ``KEY=VALUE`` overrides (the
``--set`` option of every stage, like ``dvc exp run -S``) and checks everything. A key that
is not a field is an error naming it and the known keys; a missing key takes the default.
A number setting is finite: NaN and infinities (YAML ``.nan``, ``.inf``; ``--set x=nan``)
are errors naming the key, whether or not the setting applies to the chosen options.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Self

import yaml

from ephys2expr.errors import InputError

# A name that becomes part of file names or keys (prepared inputs, feature sets).
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def setting(default, help: str):  # noqa: A002 - "help" is what typer and argparse call it
    """A settings field with its one default and its one description."""
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata={"help": help})  # fmt: skip
    return dataclasses.field(default=default, metadata={"help": help})


def read_params(path: str | os.PathLike = "params.yaml") -> dict:
    """Read a params file (``{}`` for an empty one); unreadable YAML is an InputError."""
    path = Path(path)
    try:
        with open(path) as fh:
            params = yaml.safe_load(fh)
    except FileNotFoundError:
        raise InputError(f"{path}: no such params file") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InputError(f"{path}: expected a mapping of sections, got {type(params).__name__}")
    return params


class NonFinite(InputError):
    """A number setting given NaN or an infinity."""


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML or command-line value to the field's declared type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        errors = []
        for option in options:
            try:
                return coerce(value, option, where)
            except NonFinite:  # 'nan' for a float | str setting is a number, not a word
                raise
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[0] if len(errors) == 1 else f"{where}: {value!r} is not valid")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        raise InputError(f"{where}: {value!r} is not true or false")
    if annotation is int:
        if isinstance(value, bool):
            raise InputError(f"{where}: {value!r} is not a whole number")
        if isinstance(value, int):
            return value
        try:
            as_float = float(str(value).strip())
        except ValueError:
            raise InputError(f"{where}: {value!r} is not a whole number") from None
        if not as_float.is_integer():
            raise InputError(f"{where}: {value!r} is not a whole number")
        return int(as_float)
    if annotation is float:
        if isinstance(value, bool):
            raise InputError(f"{where}: {value!r} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{where}: {value!r} is not a number") from None
        if not math.isfinite(number):  # YAML .nan/.inf, --set x=nan: never a valid setting
            raise NonFinite(f"{where}: {number} is not a finite number")
        return number
    if annotation is str:
        if isinstance(value, float) and not math.isfinite(value):  # float | str settings
            raise NonFinite(f"{where}: {value} is not a finite number")
        if isinstance(value, dict | list):
            raise InputError(f"{where}: {value!r} is not a single value")
        return "" if value is None else str(value)
    if origin is list:
        (item,) = typing.get_args(annotation) or (str,)
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise InputError(f"{where}: {value!r} is not a list")
        return [coerce(v, item, where) for v in value]
    return value


@dataclasses.dataclass
class Settings:
    """Base of every stage's settings; subclasses set ``SECTION`` and override ``check``."""

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            where = f"params.yaml {self.SECTION}.{f.name}"
            setattr(self, f.name, coerce(getattr(self, f.name), hints[f.name], where))
        self.check()

    def check(self) -> None:
        """Raise :class:`InputError` naming ``params.yaml <section>.<key>`` if a value is bad."""

    def where(self, key: str) -> str:
        """How an error names a key: ``params.yaml train.alpha``."""
        return f"params.yaml {self.SECTION}.{key}"

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict | None, where: str = "params.yaml") -> Self:
        """Build from a mapping of this section's keys (unknown keys are an error)."""
        values = dict(values or {})
        if not isinstance(values, dict):
            raise InputError(f"{where} {cls.SECTION}: expected a mapping")
        unknown = [k for k in values if k not in cls.keys()]
        if unknown:
            known = ", ".join(cls.keys())
            raise InputError(
                f"{where} {cls.SECTION}.{unknown[0]}: unknown setting (known: {known})"
            )
        return cls(**values)

    @classmethod
    def from_params(
        cls, params: str | os.PathLike | dict | None = "params.yaml", overrides=()
    ) -> Self:
        """Build from a params file (or its parsed mapping) plus ``KEY=VALUE`` overrides.

        ``params=None`` (or a default ``params.yaml`` that does not exist, e.g. when a user
        runs a stage outside the project) gives the defaults.
        """
        if isinstance(params, dict):
            section = params.get(cls.SECTION, {})
        elif params is None or (str(params) == "params.yaml" and not Path(params).is_file()):
            section = {}
        else:
            section = read_params(params).get(cls.SECTION, {})
        if section is None:
            section = {}
        if not isinstance(section, dict):
            raise InputError(f"params.yaml {cls.SECTION}: expected a mapping of settings")
        values = dict(section)
        for item in overrides or ():
            key, sep, value = str(item).partition("=")
            key = key.strip()
            if key.startswith(f"{cls.SECTION}."):
                key = key[len(cls.SECTION) + 1 :]
            if not sep or not key:
                raise InputError(f"--set {item!r}: expected KEY=VALUE")
            values[key] = yaml.safe_load(value) if value.strip() else ""
        return cls.from_dict(values)

    def as_dict(self) -> dict:
        """The settings as plain values (what ``params.yaml`` would hold)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def help_text(cls) -> str:
        """One line per key with its default and description (for ``--help``)."""
        lines = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            lines.append(f"{f.name} (default {default!r}): {f.metadata.get('help', '')}")
        return "; ".join(lines)


def build_settings(params, overrides, *classes: type[Settings]) -> tuple:
    """Build several sections at once (e.g. ``TrainSettings, ExecutorSettings``).

    An override ``section.key=value`` goes to the class of that section; a bare
    ``key=value`` goes to the first class. Returns the instances in the order given.
    """
    by_section: dict[str, list[str]] = {c.SECTION: [] for c in classes}
    for item in overrides or ():
        key = str(item).partition("=")[0].strip()
        section = key.split(".", 1)[0] if "." in key else classes[0].SECTION
        if section not in by_section:
            raise InputError(
                f"--set {item!r}: section '{section}' is not one of {sorted(by_section)}"
            )
        by_section[section].append(item)
    if params is not None and not isinstance(params, dict):
        if str(params) != "params.yaml" or Path(params).is_file():
            params = read_params(params)
        else:
            params = None
    return tuple(c.from_params(params, by_section[c.SECTION]) for c in classes)


__all__ = ["NAME", "Settings", "build_settings", "coerce", "read_params", "setting"]
