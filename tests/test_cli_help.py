"""Every stage's ``--help`` is readable in a 100-column terminal.

Typer's boxed layout put the help texts in a narrow column, and ``--set``'s help listed
every key with its default and meaning: ``stages.train --help`` was 143 lines. Now the help
is plain two-column text and ``--set`` names the keys, pointing to params.yaml for the rest.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ephys2expr.executor import ExecutorSettings
from ephys2expr.predict.settings import PredictSettings
from ephys2expr.prepare.settings import PrepareSettings
from ephys2expr.recordings.settings import FeaturesSettings
from ephys2expr.train.settings import TrainSettings
from ephys2expr.validate.settings import ValidateSettings

SECTIONS = {
    "prepare": [PrepareSettings],
    "train": [TrainSettings, ExecutorSettings],
    "predict": [PredictSettings, ExecutorSettings],
    "validate": [ValidateSettings],
    "download": [],
    "features": [FeaturesSettings],
    "show": [],
}
COLUMNS = 100
ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def _help(stage: str) -> str:
    """``python -m stages.<stage> --help`` as a user runs it, in a 100-column terminal."""
    env = {**os.environ, "COLUMNS": str(COLUMNS)}
    res = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("stage", sorted(SECTIONS))
def test_help_fits_100_columns_in_a_few_lines(stage):
    text = _help(stage)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= COLUMNS, text
    assert len(lines) <= 35, text
    assert not re.search(r"[│╭╰]", text), "boxed layout"
    # each option's help starts within the first 40 columns: the help column is wide
    found = (re.match(r"(  -.*?\S)\s{2,}\S", line) for line in lines)
    starts = [m.end() - 1 for m in found if m]
    assert starts and max(starts) <= 40, starts


@pytest.mark.parametrize("stage", sorted(s for s in SECTIONS if SECTIONS[s]))
def test_set_help_names_every_key_and_where_they_are_explained(stage):
    text = " ".join(_help(stage).split())  # unwrapped
    first, *more = SECTIONS[stage]
    for cls in SECTIONS[stage]:
        assert ", ".join(cls.keys()) in text, cls.SECTION
    for cls in more:
        assert f"{cls.SECTION}.KEY:" in text
    assert "params.yaml" in text and f"{first.__module__.replace('.', '/')}.py" in text
    # the keys only: no defaults or meanings (they made the help 143 lines long)
    assert "(default " not in text
