"""The per-sweep work on one recording: its steps, the spikes in and before each, and what
kind of cell and sweep it is (spontaneously active, depolarisation block).

:mod:`~ephys2expr.recordings.definitions` measures each feature from this; nothing here
is a feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ephys2expr.recordings.recording import Recording
from ephys2expr.recordings.settings import FeaturesSettings
from ephys2expr.recordings.spikes import Spikes, find_spikes
from ephys2expr.recordings.sweeps import Step, find_steps


@dataclass
class StepSweep:
    """One sweep's long square with its spikes (``None`` where spikes are not measured)."""

    step: Step
    spikes: Spikes | None
    baseline_spikes: int
    spiking: bool  # any spike in the step (or, without spike detection, V above min_peak)

    @property
    def number(self) -> int:
        return self.step.sweep.number

    @property
    def rate(self) -> float:
        """Mean firing rate over the step (Hz)."""
        return len(self.spikes) / self.step.duration if self.spikes is not None else np.nan


@dataclass
class Analysis:
    """What the features are measured from; ``reason``/``spike_reason`` say what is missing."""

    recording: Recording
    settings: FeaturesSettings
    sweeps: list[StepSweep] = field(default_factory=list)
    reason: str = ""  # no usable step at all (voltage clamp, gap-free, no stimulus)
    spike_reason: str = ""  # spikes not measured (sampling too slow)
    spontaneous: str = ""  # spikes without depolarising current
    block_from: float | None = None  # depolarisation block from this amplitude (pA) up

    def ordered(self, sign: int) -> list[StepSweep]:
        """Depolarising (``sign`` 1, ascending) or hyperpolarising (-1, descending to the
        most negative) step sweeps."""
        chosen = [s for s in self.sweeps if np.sign(s.step.amplitude) == sign]
        return sorted(chosen, key=lambda s: (sign * s.step.amplitude, s.number))


def analyse(recording: Recording, settings: FeaturesSettings) -> Analysis:
    """Find the steps of ``recording`` and the spikes of each (the per-sweep work)."""
    out = Analysis(recording, settings)
    if recording.clamp == "voltage":
        out.reason = "voltage-clamp recording: no membrane potential to measure"
        return out
    steps, out.reason = find_steps(recording, settings)
    fs = recording.fs
    if fs < settings.min_spike_khz * 1000:
        out.spike_reason = (
            f"sampled at {fs / 1000:g} kHz, below features.min_spike_khz = "
            f"{settings.min_spike_khz:g} kHz: an action potential is not resolved"
        )
    for step in steps:
        v, sfs = step.sweep.v, step.sweep.fs
        if out.spike_reason:
            spiking = bool(np.max(v[step.onset : step.offset]) > settings.min_peak)
            out.sweeps.append(StepSweep(step, None, 0, spiking))
            continue
        spikes = find_spikes(v, sfs, step.onset, step.offset, settings)
        base = step.baseline
        before = (
            find_spikes(v, sfs, base.start, base.stop, settings) if base.stop > base.start else []
        )
        out.sweeps.append(StepSweep(step, spikes, len(before), len(spikes) > 0))
    _classify(out)
    return out


def _classify(a: Analysis) -> None:
    """Spontaneous activity and the amplitude from which the cell is in depolarisation block."""
    if a.spike_reason:
        return
    quiet_current = [s for s in a.sweeps if s.step.amplitude <= 0 and s.spiking]
    active_base = [s for s in a.sweeps if s.baseline_spikes > 0]
    if active_base or quiet_current:
        where = (active_base or quiet_current)[0]
        a.spontaneous = (
            f"spontaneously active: spikes before the step in {len(active_base)} and during "
            f"steps <= 0 pA in {len(quiet_current)} of {len(a.sweeps)} sweeps (first: sweep "
            f"{where.number})"
        )
    for s in a.ordered(1):
        if s.spiking and in_block(s, a.settings):
            a.block_from = s.step.amplitude
            break


def in_block(s: StepSweep, settings: FeaturesSettings) -> bool:
    """Spiking stops ``block_fraction`` of the step before its end while the membrane stays
    above the sweep's median spike threshold: depolarisation block."""
    step, spikes = s.step, s.spikes
    last = spikes.peak[-1]
    gap = (step.offset - last) / step.sweep.fs
    if gap < settings.block_fraction * step.duration:
        return False
    tail = step.sweep.v[spikes.trough[-1] : step.offset]
    return bool(tail.size and np.mean(tail) > np.median(step.sweep.v[spikes.threshold]))


__all__ = ["Analysis", "StepSweep", "analyse", "in_block"]
