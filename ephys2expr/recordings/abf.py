"""Axon ABF 1 and 2 files, read with pyABF (MIT licence).

The membrane potential is ADC channel 0 and the command current comes from pyABF's
``sweepC``, the waveform pyABF builds from the protocol's epoch table (ABF 1 and 2). A
channel 0 in a current unit means voltage clamp; ``nOperationMode`` 3 means gap-free.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ephys2expr.errors import InputError, one_line
from ephys2expr.recordings.recording import (
    Recording,
    Sweep,
    check_voltage_scale,
    to_mv,
    to_pa,
    unit_kind,
)

GAP_FREE = 3  # ABF nOperationMode of a continuous (gap-free) recording


def _open(path: Path):
    import pyabf

    try:
        return pyabf.ABF(str(path))
    except Exception as exc:  # noqa: BLE001 - pyABF raises anything on a damaged header
        # (struct.error, NotImplementedError, ValueError, IndexError, OSError on a short read)
        raise InputError(
            one_line(
                f"{path}: not a readable ABF file, truncated or corrupt "
                f"({type(exc).__name__}: {exc})"
            )
        ) from None


def read_abf(path: str | Path) -> Recording:
    """Read an ABF file into a :class:`Recording` (mV, pA; one sweep per episode)."""
    path = Path(path)
    abf = _open(path)
    where = str(path)
    y_unit = abf.adcUnits[0] if abf.adcUnits else ""
    kind = unit_kind(y_unit)
    if kind is None:
        to_mv([], y_unit, where)  # raises: one line naming the file and the unit
    rec = Recording(
        where,
        path.stem,
        [],
        clamp="current" if kind == "voltage" else "voltage",
        gap_free=int(abf.nOperationMode) == GAP_FREE,
    )
    if rec.clamp == "voltage":
        rec.notes.append(f"voltage clamp (channel 0 in {y_unit})")
        return rec
    fs = float(abf.dataRate)
    c_unit = abf.sweepUnitsC
    try:
        for n in abf.sweepList:
            abf.setSweep(n, channel=0)
            v = to_mv(abf.sweepY, y_unit, where)
            i = None if rec.gap_free else _command(abf.sweepC, c_unit, where)
            rec.sweeps.append(Sweep(int(n), v, i, fs))
    except (struct.error, ValueError, IndexError, EOFError, KeyError) as exc:
        raise InputError(one_line(f"{path}: truncated or corrupt sweep data ({exc})")) from None
    if rec.sweeps:
        check_voltage_scale(np.concatenate([s.v for s in rec.sweeps]), where)
    return rec


def _command(c, unit: str, where: str) -> np.ndarray | None:
    """The command current in pA, or None when the protocol drives no current."""
    if unit_kind(unit) != "current":
        return None  # e.g. a DAC in mV: no current steps to analyse
    return to_pa(c, unit, where)


__all__ = ["read_abf"]
