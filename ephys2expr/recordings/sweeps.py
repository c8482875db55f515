"""Long-square current steps found from the stimulus, not from the protocol's name.

A sweep's command current is cut into runs of one level (pyABF's epochs or an NWB stimulus
series give such piecewise-constant waveforms). A run away from the holding level lasting
at least ``min_step_ms`` is a candidate step; "dual" protocols have two per sweep (a short
test step, then the long square, e.g. epoch 2 of ``171116sh_0018.abf``). The file's long
square is the candidate window whose amplitude varies most across sweeps (a test pulse is
the same in every sweep), the longest on a tie; every sweep's amplitude is then measured in
that window, so the 0 pA sweep of a series gets its step too.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ephys2expr.recordings.recording import Recording, Sweep
from ephys2expr.recordings.settings import FeaturesSettings

SETTLE_S = 0.05  # after a test pulse the membrane settles this long before a baseline starts


@dataclass
class Step:
    """A sweep's long square: samples ``[onset, offset)``, amplitude (pA) over holding."""

    sweep: Sweep
    onset: int
    offset: int
    amplitude: float
    baseline: slice  # the samples just before the onset, after any other epoch settled

    @property
    def duration(self) -> float:
        """Length of the step (s)."""
        return (self.offset - self.onset) / self.sweep.fs


def _tolerance(i: np.ndarray) -> float:
    """Smallest level change that counts: 0.5 pA or 1 % of the sweep's range."""
    return max(0.5, 0.01 * float(np.ptp(i))) if i.size else 0.5


def runs(i: np.ndarray) -> list[tuple[int, int, float]]:
    """``(start, stop, level)`` of each run of one command level in ``i`` (pA)."""
    if i.size == 0:
        return []
    edges = np.flatnonzero(np.abs(np.diff(i)) > _tolerance(i)) + 1
    bounds = np.concatenate([[0], edges, [i.size]])
    return [
        (int(a), int(b), float(np.median(i[a:b])))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def _candidates(sweep: Sweep, min_n: int) -> list[tuple[int, int]]:
    i = sweep.i
    hold, tol = float(i[0]), _tolerance(i)
    return [(a, b) for a, b, level in runs(i) if b - a >= min_n and abs(level - hold) > tol]


def find_steps(recording: Recording, settings: FeaturesSettings) -> tuple[list[Step], str]:
    """The long square of every sweep, and ``""`` or why there is none.

    Returns
    -------
    steps : list of Step
        One per sweep with a stimulus, in sweep order (empty when no step is found).
    reason : str
        Empty, or one line: gap-free, no stimulus, or no step of ``min_step_ms``.
    """
    if recording.gap_free:
        return [], "gap-free recording: no current steps"
    sweeps = [s for s in recording.sweeps if s.i is not None]
    if not sweeps:
        return [], "no stimulus (command current) in the file"
    seen: dict[tuple[int, int], list[float]] = defaultdict(list)
    for s in sweeps:
        min_n = int(settings.min_step_ms * s.fs / 1000.0)
        for a, b in _candidates(s, min_n):
            seen[(a, b)].append(float(np.median(s.i[a:b])) - float(s.i[0]))
    if not seen:
        return [], f"no current step of {settings.min_step_ms:g} ms or longer in any sweep"
    # the long square varies across sweeps; a test pulse does not; then the longest
    window = max(seen, key=lambda w: (len(set(np.round(seen[w], 1))), w[1] - w[0], -w[0]))
    onset, offset = window
    steps = []
    for s in sweeps:
        if offset > len(s.i):
            continue
        amplitude = round(float(np.median(s.i[onset:offset]) - s.i[0]), 2)  # 0.01 pA: 0 is 0
        steps.append(Step(s, onset, offset, amplitude, _baseline(s, onset, settings)))
    return steps, ""


def _baseline(sweep: Sweep, onset: int, settings: FeaturesSettings) -> slice:
    """The ``baseline_ms`` before ``onset``, starting after any earlier epoch has settled."""
    i, fs = sweep.i, sweep.fs
    start = max(onset - int(settings.baseline_ms * fs / 1000.0), 0)
    moved = np.flatnonzero(np.abs(i[:onset] - i[0]) > _tolerance(i))
    if moved.size:
        start = max(start, min(int(moved[-1]) + 1 + int(SETTLE_S * fs), onset - 1))
    return slice(start, onset)


__all__ = ["Step", "find_steps", "runs"]
