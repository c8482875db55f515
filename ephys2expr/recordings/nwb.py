"""NWB 2 intracellular files (Allen Institute / DANDI layout), read with h5py.

Responses are the ``acquisition`` series whose ``neurodata_type`` is ``CurrentClampSeries``
(``VoltageClampSeries``: voltage clamp); stimuli the ``stimulus/presentation`` series. A
response and its stimulus are paired by their ``sweep_number`` (Allen), else by the number
that ends their names (``ic__Step__3`` and ``ics__Step__3``, BluePyEfe / DANDI), else by
order. Values are ``data * conversion`` in the series' ``unit`` (volts, amperes), then
converted to mV and pA. pynwb is not needed to read this much (and pins hdmf).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ephys2expr.errors import InputError, one_line
from ephys2expr.recordings.recording import Recording, Sweep, check_voltage_scale, to_mv, to_pa

CURRENT_CLAMP = ("CurrentClampSeries", "IZeroClampSeries")
VOLTAGE_CLAMP = ("VoltageClampSeries",)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _key(name: str, group, order: int):
    if "sweep_number" in group.attrs:
        return int(np.asarray(group.attrs["sweep_number"]).ravel()[0])
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else order


def _series(group, types) -> dict:
    found = {}
    for order, (name, item) in enumerate(sorted(group.items(), key=lambda kv: _natural(kv[0]))):
        if _text(item.attrs.get("neurodata_type", "")) in types and "data" in item:
            found[_key(name, item, order)] = item
    return found


def _natural(name: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _values(series, convert, where: str) -> tuple[np.ndarray, float]:
    data = series["data"]
    unit = _text(data.attrs.get("unit", ""))
    values = np.asarray(data[()], dtype=np.float64) * float(data.attrs.get("conversion", 1.0))
    if "starting_time" in series:
        fs = float(series["starting_time"].attrs["rate"])
    elif "timestamps" in series:
        fs = 1.0 / float(np.median(np.diff(series["timestamps"][()])))
    else:
        raise InputError(f"{where}: series {series.name} has neither a rate nor timestamps")
    return convert(values, unit, where), fs


def read_nwb(path: str | Path) -> Recording:
    """Read an NWB 2 intracellular file into a :class:`Recording` (mV, pA)."""
    import h5py

    path = Path(path)
    where = str(path)
    try:
        with h5py.File(path, "r") as fh:
            return _read(fh, path)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py and a damaged layout raise many types
        raise InputError(
            one_line(f"{where}: not a readable NWB (HDF5) file, truncated or corrupt ({exc})")
        ) from None


def _read(fh, path: Path) -> Recording:
    where = str(path)
    acq = fh.get("acquisition", {})
    stim = fh.get("stimulus/presentation", {})
    rec = Recording(where, path.stem, [])
    if not _series(acq, CURRENT_CLAMP):
        if _series(acq, VOLTAGE_CLAMP):
            rec.clamp = "voltage"
            rec.notes.append("voltage clamp (VoltageClampSeries only)")
            return rec
        raise InputError(f"{where}: no current-clamp or voltage-clamp series in acquisition/")
    responses = _series(acq, CURRENT_CLAMP)
    stimuli = _series(stim, tuple(t.replace("Series", "StimulusSeries") for t in CURRENT_CLAMP))
    for number in sorted(responses):
        v, fs = _values(responses[number], to_mv, where)
        i = None
        if number in stimuli:
            i, fs_i = _values(stimuli[number], to_pa, where)
            if len(i) != len(v) or fs_i != fs:
                raise InputError(
                    f"{where}: sweep {number}: stimulus and response differ in length or rate"
                )
        rec.sweeps.append(Sweep(int(number), v, i, fs))
    rec.gap_free = not stimuli and len(rec.sweeps) == 1
    check_voltage_scale(np.concatenate([s.v for s in rec.sweeps]), where)
    return rec


__all__ = ["read_nwb"]
