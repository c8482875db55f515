"""The columns a feature table of raw recordings holds beside the features.

Per file what was read (:data:`RECORDING_COLUMNS`), and per feature the sweeps used
(``<feature>_sweep``) and why a value is missing (``<feature>_qc``). ``stages/features.py``
writes them; predict reads such a table as it is, these columns quietly
(:func:`is_recording_column`). No imports beyond the shared feature names, so predict
depends on nothing else of this package.
"""

from __future__ import annotations

from ephys2expr.features import PAIRED_FEATURES

RECORDING_COLUMNS: list[str] = ["file", "format", "sampling_khz", "n_sweeps", "steps_pa", "qc"]
QC_SUFFIXES: tuple[str, ...] = ("_sweep", "_qc")


def is_recording_column(column) -> bool:
    """Whether ``column`` is one of a recordings feature table's QC columns."""
    name = str(column)
    if name in RECORDING_COLUMNS:
        return True
    return any(name.endswith(x) and name[: -len(x)] in PAIRED_FEATURES for x in QC_SUFFIXES)


__all__ = ["QC_SUFFIXES", "RECORDING_COLUMNS", "is_recording_column"]
