"""Write docs/settings.md: every setting of params.yaml with its default and its help text.

Each setting is defined once, in its stage's settings object (name, default, help, check);
params.yaml holds each key with its value (and a short comment where the value is a
choice), in at most 80 lines, and this page is the full reference, generated from the
settings objects. ``tests/test_settings.py`` fails when the
committed page differs from what this script writes::

    python scripts/settings_reference.py          # rewrite docs/settings.md
    python scripts/settings_reference.py --check  # exit 1 if it is not current
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "settings.md"

# params.yaml section -> (module, class) of its settings object, in params.yaml's order
SETTINGS = {
    "prepare": ("ephys2expr.prepare.settings", "PrepareSettings"),
    "train": ("ephys2expr.train.settings", "TrainSettings"),
    "executor": ("ephys2expr.executor", "ExecutorSettings"),
    "cells": ("ephys2expr.cell_inputs", "CellSettings"),
    "predict": ("ephys2expr.predict.settings", "PredictSettings"),
    "validate": ("ephys2expr.validate.settings", "ValidateSettings"),
    "features": ("ephys2expr.recordings.settings", "FeaturesSettings"),
}


def settings_class(section: str):
    """The settings object of a params.yaml section."""
    module, name = SETTINGS[section]
    return getattr(importlib.import_module(module), name)


def _default(field: dataclasses.Field) -> str:
    value = field.default_factory() if field.default is dataclasses.MISSING else field.default
    return json.dumps(value, sort_keys=True)


def reference() -> str:
    """The text of docs/settings.md."""
    lines = [
        "# Settings reference",
        "",
        "Every key of `params.yaml`, by section, with its default and what it does. Generated",
        "from the settings objects by `python scripts/settings_reference.py` (do not edit by",
        "hand; `tests/test_settings.py` checks it is current). Change a value in `params.yaml`,",
        "with `dvc exp run -S section.key=value`, or with a stage's `--set key=value`;",
        "`train_<source>` sections override `train` keys for one source. Back to the",
        "[README](../README.md); all docs: [docs/README.md](README.md).",
    ]
    for section in SETTINGS:
        cls = settings_class(section)
        doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        lines += ["", f"## `{section}`", "", f"{doc} (`{cls.__module__}.{cls.__name__}`)", ""]
        lines += ["| key | default | what |", "|---|---|---|"]
        for field in dataclasses.fields(cls):
            text = field.metadata["help"].replace("|", "\\|")
            lines.append(f"| `{field.name}` | `{_default(field)}` | {text} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is not current")
    args = parser.parse_args(argv)
    text = reference()
    if args.check:
        current = PAGE.read_text() if PAGE.is_file() else ""
        if current != text:
            print(f"{PAGE}: not current; run python scripts/settings_reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
