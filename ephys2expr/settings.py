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

A class with ``PER_SOURCE = True`` (``TrainSettings``) also reads a per-source section,
``<SECTION>_<source>`` (``train_scala2021``): only the keys it sets override the shared
section, so a change to it reruns only that source's stage (dvc.yaml lists the section in
that stage's ``params``). Errors name the section a value came from.

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
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata={"help": help}
        )
    return dataclasses.field(default=default, metadata={"help": help})


# Deepest nesting a params file or a --set value may have (ours: 3). Deeper YAML is a
# mistake or an attack: PyYAML's composer recurses once per level and runs out of stack.
MAX_YAML_DEPTH = 32


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses what a settings file never needs and a typo or an
    attack produces: anchors and aliases (``&a``/``*a``: a few lines of them expand to
    gigabytes, the "billion laughs"), a key given twice in one mapping (PyYAML keeps the
    last one silently) and nesting deeper than :data:`MAX_YAML_DEPTH`."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None,
                None,
                "anchors and aliases (&name, *name) are not allowed in settings",
                event.start_mark,
            )
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue  # unhashable: the base class reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (which value is "
                    "meant is ambiguous; remove one)",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text, where: str):
    """Parse settings YAML (a string or a file object) strictly (:class:`_StrictLoader`);
    any problem is one :class:`InputError` line naming ``where``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise InputError(f"{where}: not valid YAML ({exc.problem}{at})") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise InputError(f"{where}: not valid YAML (nested too deeply)") from None


def short_repr(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, safe for huge or deeply nested values."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring = r.maxother = limit
    r.maxlevel = 3
    text = r.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_params(path: str | os.PathLike = "params.yaml") -> dict:
    """Read a params file (``{}`` for an empty one); unreadable YAML is an InputError,
    and so are anchors/aliases, a key given twice and very deep nesting (:func:`load_yaml`)."""
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise InputError(f"{path}: is a folder, expected a params file")
        if path.exists():
            raise InputError(f"{path}: not a regular file, expected a params file")
    try:
        with open(path) as fh:
            params = load_yaml(fh, str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: no such params file") from None
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
        if len(errors) == 1:
            raise InputError(errors[0])
        raise InputError(f"{where}: {short_repr(value)} is not valid")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        raise InputError(f"{where}: {short_repr(value)} is not true or false")
    if annotation is int:
        if isinstance(value, bool):
            raise InputError(f"{where}: {short_repr(value)} is not a whole number")
        if isinstance(value, int):
            return value
        try:
            as_float = float(str(value).strip())
        except ValueError:
            raise InputError(f"{where}: {short_repr(value)} is not a whole number") from None
        if not as_float.is_integer():
            raise InputError(f"{where}: {short_repr(value)} is not a whole number")
        return int(as_float)
    if annotation is float:
        if isinstance(value, bool):
            raise InputError(f"{where}: {short_repr(value)} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{where}: {short_repr(value)} is not a number") from None
        if not math.isfinite(number):  # YAML .nan/.inf, --set x=nan: never a valid setting
            raise NonFinite(f"{where}: {number} is not a finite number")
        return number
    if annotation is str:
        if isinstance(value, float) and not math.isfinite(value):  # float | str settings
            raise NonFinite(f"{where}: {value} is not a finite number")
        if isinstance(value, dict | list):
            raise InputError(f"{where}: {short_repr(value)} is not a single value")
        return "" if value is None else str(value)
    if origin is list:
        (item,) = typing.get_args(annotation) or (str,)
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise InputError(f"{where}: {short_repr(value)} is not a list")
        return [coerce(v, item, where) for v in value]
    return value


@dataclasses.dataclass
class Settings:
    """Base of every stage's settings; subclasses set ``SECTION`` and override ``check``."""

    SECTION: ClassVar[str] = ""
    # True: a per-source section <SECTION>_<source> may override keys (see the module doc)
    PER_SOURCE: ClassVar[bool] = False
    # Keys renamed or moved to another section: old key -> "section.key" (refused, naming it)
    MOVED: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = coerce(getattr(self, f.name), hints[f.name], self.where(f.name))
            setattr(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Raise :class:`InputError` naming ``params.yaml <section>.<key>`` if a value is bad."""

    # Where each value came from, for messages (not settings: no field, not in as_dict).
    # Set by from_params before __init__ runs its checks; kept by :meth:`replace`.
    _source: ClassVar[str] = ""
    _origins: ClassVar[dict[str, str]] = {}

    def source_section(self) -> str:
        """The per-source section these settings read (``train_scala2021``), or ``""``."""
        return f"{self.SECTION}_{self._source}" if self._source else ""

    def where(self, key: str) -> str:
        """How an error names a key: ``params.yaml train.alpha``, or
        ``params.yaml train_scala2021.alpha`` when the per-source section set it."""
        return f"params.yaml {self._origins.get(key, self.SECTION)}.{key}"

    def override_hint(self, key: str, value) -> str:
        """How to set ``key`` for this source only, e.g. ``dvc exp run -S
        +train_scala2021.n_folds=3`` (``+`` when the section does not hold the key yet)."""
        section = self.source_section()
        if not section:
            return f"--set {self.SECTION}.{key}={value}"
        plus = "" if self._origins.get(key) == section else "+"
        return f"dvc exp run -S {plus}{section}.{key}={value} (or the stage's --set {key}={value})"

    def replace(self, **changes) -> Self:
        """A copy with ``changes`` (checked again), keeping where each value came from."""
        return type(self)._build({**self.as_dict(), **changes}, self._source, dict(self._origins))

    @classmethod
    def _build(cls, values: dict, source: str = "", origins: dict | None = None) -> Self:
        obj = cls.__new__(cls)
        obj._source, obj._origins = source, origins or {}
        obj.__init__(**values)
        return obj

    @classmethod
    def keys(cls) -> list[str]:
        """The keys of this section, in ``params.yaml`` order (also ``--set``'s help)."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(
        cls,
        values: dict | None,
        where: str = "params.yaml",
        source: str = "",
        origins: dict[str, str] | None = None,
    ) -> Self:
        """Build from a mapping of this section's keys (unknown keys are an error).

        ``origins`` (key -> section) names the section each value came from in messages.
        """
        if values is not None and not isinstance(values, dict):
            raise InputError(f"{where} {cls.SECTION}: expected a mapping")
        values, origins = dict(values or {}), dict(origins or {})
        unknown = [k for k in values if k not in cls.keys()]
        moved = [k for k in unknown if k in cls.MOVED]
        if moved:
            section, new = origins.get(moved[0], cls.SECTION), cls.MOVED[moved[0]]
            how = "renamed" if new.startswith(f"{cls.SECTION}.") else "moved"
            raise InputError(f"{where} {section}.{moved[0]}: {how} to {new} (set it there)")
        if unknown:
            known = ", ".join(cls.keys())
            section = origins.get(unknown[0], cls.SECTION)
            raise InputError(f"{where} {section}.{unknown[0]}: unknown setting (known: {known})")
        return cls._build(values, source, origins)

    @classmethod
    def _section(cls, params: dict, name: str) -> dict:
        section = params.get(name, {})
        if section is None:
            return {}
        if not isinstance(section, dict):
            raise InputError(f"params.yaml {name}: expected a mapping of settings")
        return dict(section)

    @classmethod
    def from_params(
        cls,
        params: str | os.PathLike | dict | None = "params.yaml",
        overrides=(),
        source: str = "",
    ) -> Self:
        """Build from a params file (or its parsed mapping) plus ``KEY=VALUE`` overrides.

        ``params=None`` (or a default ``params.yaml`` that does not exist, e.g. when a user
        runs a stage outside the project) gives the defaults. With ``source`` (and
        ``PER_SOURCE``) the keys of the section ``<SECTION>_<source>`` override the shared
        section's; an override may be written ``key=...``, ``<SECTION>.key=...`` or
        ``<SECTION>_<source>.key=...``.
        """
        if params is None or (str(params) == "params.yaml" and not Path(params).is_file()):
            params = {}
        elif not isinstance(params, dict):
            params = read_params(params)
        values = cls._section(params, cls.SECTION)
        source = source if cls.PER_SOURCE else ""
        origins: dict[str, str] = {}
        if source:
            per_source = f"{cls.SECTION}_{source}"
            for key, value in cls._section(params, per_source).items():
                values[key], origins[key] = value, per_source
        prefixes = [f"{cls.SECTION}."] + ([f"{cls.SECTION}_{source}."] if source else [])
        for item in overrides or ():
            key, sep, value = str(item).partition("=")
            key = key.strip()
            for prefix in prefixes:
                if key.startswith(prefix):
                    key = key[len(prefix) :]
            if not sep or not key:
                raise InputError(f"--set {short_repr(item)}: expected KEY=VALUE")
            values[key] = load_yaml(value, f"--set {key}") if value.strip() else ""
            origins.pop(key, None)
        return cls.from_dict(values, source=source, origins=origins)

    def as_dict(self) -> dict:
        """The settings as plain values (what ``params.yaml`` would hold)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def build_settings(params, overrides, *classes: type[Settings], source: str = "") -> tuple:
    """Build several sections at once (e.g. ``TrainSettings, ExecutorSettings``).

    An override ``section.key=value`` goes to the class of that section; a bare
    ``key=value`` goes to the first class. ``source`` adds each ``PER_SOURCE`` class's
    section ``<SECTION>_<source>`` (:meth:`Settings.from_params`). Returns the instances in
    the order given.
    """
    by_section: dict[str, list[str]] = {c.SECTION: [] for c in classes}
    aliases = {f"{c.SECTION}_{source}": c.SECTION for c in classes if source and c.PER_SOURCE}
    for item in overrides or ():
        key = str(item).partition("=")[0].strip()
        section = key.split(".", 1)[0] if "." in key else classes[0].SECTION
        section = aliases.get(section, section)
        if section not in by_section:
            raise InputError(
                f"--set {short_repr(item)}: section '{section}' is not one of {sorted(by_section)}"
            )
        by_section[section].append(item)
    if params is not None and not isinstance(params, dict):
        if str(params) != "params.yaml" or Path(params).is_file():
            params = read_params(params)
        else:
            params = None
    return tuple(c.from_params(params, by_section[c.SECTION], source) for c in classes)


__all__ = [
    "NAME",
    "Settings",
    "build_settings",
    "coerce",
    "load_yaml",
    "read_params",
    "setting",
    "short_repr",
]
