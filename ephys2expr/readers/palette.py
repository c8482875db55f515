"""The Allen Institute's cre-line colours (``driver_lines_palette.csv``)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ephys2expr.errors import InputError


def read_palette(path: str | os.PathLike) -> dict[str, str]:
    """``driver_lines_palette.csv``: cre line label -> hex colour."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    pal = pd.read_csv(path, dtype=str)
    for col in ("driver_lines_label", "driver_lines_color"):
        if col not in pal.columns:
            raise InputError(f"{path}: missing column '{col}'")
    bad = pal.loc[~pal["driver_lines_color"].str.match(r"^#[0-9A-Fa-f]{6}$"), "driver_lines_color"]
    if len(bad):
        raise InputError(f"{path}: colour '{bad.iloc[0]}' is not #RRGGBB")
    return dict(zip(pal["driver_lines_label"], pal["driver_lines_color"], strict=True))


__all__ = ["read_palette"]
