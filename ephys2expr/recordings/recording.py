"""A recording in memory: sweeps of membrane potential (mV) and command current (pA).

The readers (:mod:`~ephys2expr.recordings.abf`, :mod:`~ephys2expr.recordings.nwb`) turn a
file into a :class:`Recording`; everything after them works on these arrays only, so a new
format needs only a reader. Units are converted here, explicitly, and a unit that is not a
voltage or a current is refused with one line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ephys2expr.errors import InputError

# Scale factors to this project's units (mV, pA). Keys are lower-case; "u" and the micro
# sign both mean micro.
VOLTAGE_UNITS = {"mv": 1.0, "v": 1e3, "uv": 1e-3, "µv": 1e-3, "volts": 1e3, "millivolts": 1.0}
CURRENT_UNITS = {"pa": 1.0, "na": 1e3, "ua": 1e6, "µa": 1e6, "a": 1e12, "amperes": 1e12}


def unit_kind(unit: str) -> str | None:
    """``"voltage"``, ``"current"`` or None for a unit name (``"mV"``, ``"pA"``, ...)."""
    key = str(unit).strip().lower()
    if key in VOLTAGE_UNITS:
        return "voltage"
    if key in CURRENT_UNITS:
        return "current"
    return None


def to_mv(values, unit: str, where: str) -> np.ndarray:
    """``values`` in ``unit`` as mV (float64); a non-voltage unit is an :class:`InputError`."""
    key = str(unit).strip().lower()
    if key not in VOLTAGE_UNITS:
        raise InputError(
            f"{where}: the recorded channel is in {unit!r}, not a voltage unit (mV, V) "
            "nor a current (pA, nA: voltage clamp)"
        )
    return np.asarray(values, dtype=np.float64) * VOLTAGE_UNITS[key]


def to_pa(values, unit: str, where: str) -> np.ndarray:
    """``values`` in ``unit`` as pA (float64); a non-current unit is an :class:`InputError`."""
    key = str(unit).strip().lower()
    if key not in CURRENT_UNITS:
        raise InputError(f"{where}: the stimulus is in {unit!r}, not a current unit (pA, nA, A)")
    return np.asarray(values, dtype=np.float64) * CURRENT_UNITS[key]


@dataclass
class Sweep:
    """One sweep: membrane potential ``v`` (mV), command current ``i`` (pA), rate ``fs`` (Hz).

    ``i`` is None when the file holds no stimulus for the sweep (gap-free recordings).
    """

    number: int
    v: np.ndarray
    i: np.ndarray | None
    fs: float

    @property
    def duration(self) -> float:
        """Length of the sweep (s)."""
        return len(self.v) / self.fs


@dataclass
class Recording:
    """A file's sweeps, its clamp mode and what the reader noticed (``notes``)."""

    path: str
    cell_id: str
    sweeps: list[Sweep]
    clamp: str = "current"  # "current" | "voltage"
    gap_free: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def fs(self) -> float:
        """Sampling rate (Hz) of the first sweep (NaN without sweeps)."""
        return self.sweeps[0].fs if self.sweeps else float("nan")


def check_voltage_scale(v: np.ndarray, where: str) -> None:
    """Refuse a trace whose values cannot be millivolts (e.g. volts labelled mV).

    A membrane potential sits between about -150 and +60 mV and moves by more than a
    millivolt over a sweep; values all within +-1 "mV" are volts in disguise.
    """
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        raise InputError(f"{where}: the membrane potential holds no finite value")
    low, high = np.percentile(finite, [1, 99])
    if max(abs(low), abs(high)) < 1.0:
        raise InputError(
            f"{where}: membrane potential between {low:.3g} and {high:.3g} 'mV' (volts "
            "labelled as millivolts?); fix the file's units"
        )
    if low < -1000 or high > 1000:
        raise InputError(
            f"{where}: membrane potential between {low:.4g} and {high:.4g} mV, not a "
            "neuron's (wrong units?)"
        )
