"""What is written for people is rounded: the same bytes on every machine.

Another CPU (or BLAS kernel, or summation order) changes the last bits of a float; written
with 16 digits, such a number makes a git-tracked report or plot table differ after a rebuild
elsewhere. Rounded to :data:`DIGITS` significant digits, a difference of 1e-10 relative
changes the written text only when the value lies within 1e-10 of a rounding boundary. The
numbers the pipeline computes with (model stores, tables under ``data/``) are not rounded.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

DIGITS = 4  # significant digits of the reports and plot tables (docs/pipeline.md)


def significant(value: float, digits: int = DIGITS) -> float:
    """``value`` rounded to ``digits`` significant digits (NaN and infinities as they are;
    -0.0 written as 0.0)."""
    if not math.isfinite(value) or value == 0:
        return value + 0.0 if value == 0 else value
    return float(f"{value:.{digits}g}") + 0.0


def for_people(obj, digits: int = DIGITS):
    """``obj`` (nested dicts, lists, tuples) with every float rounded to ``digits``
    significant digits; ints, bools and strings as they are."""
    if isinstance(obj, dict):
        return {k: for_people(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(for_people(v, digits) for v in obj)
    if isinstance(obj, float | np.floating):
        return significant(float(obj), digits)
    return obj


def round_table(table: pd.DataFrame, digits: int = DIGITS) -> pd.DataFrame:
    """A copy of ``table`` with its float columns rounded to ``digits`` significant digits."""
    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            values = out[col].to_numpy(dtype=float)
            out[col] = np.array([significant(v, digits) for v in values], dtype=float)
    return out


__all__ = ["DIGITS", "for_people", "round_table", "significant"]
