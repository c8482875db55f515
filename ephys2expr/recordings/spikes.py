"""Action potentials of one sweep, found and measured as the Allen Cell Types pipeline does.

ipfx's ``SpikeFeatureExtractor``, re-implemented in numpy (ipfx cannot be a dependency here:
docs/features-from-recordings.md, "Why our own numpy"):

1. low-pass the membrane potential (4-pole Bessel, zero phase) at
   :meth:`FeaturesSettings.cutoff_hz` - ipfx's 10 kHz, or 0.4 x the sampling rate where that
   is lower (ipfx's fixed 10 kHz fails at 10 and 20 kHz sampling, ipfx #546);
2. a spike starts where dV/dt crosses ``dvdt_threshold`` (20 mV/ms) upwards; its peak is
   the maximum before the next crossing and within ``fast_trough_ms`` (ipfx's 5 ms
   ``max_interval``); it must rise ``min_height`` above the crossing, peak above
   ``min_peak`` and fall ``min_height`` again within ``fast_trough_ms`` (a step's onset
   transient crosses 20 mV/ms too, but does not come down);
3. threshold: going back from the steepest upstroke, the first point where dV/dt falls
   below ``threshold_fraction`` (5 %) of it;
4. trough: the minimum between the peak and the next spike's threshold (or the end of the
   window); fast trough: the minimum within ``fast_trough_ms`` (5 ms) after the peak;
5. width: full width at half height, height = peak - trough (or peak - threshold where
   that half level lies below threshold), linearly interpolated between samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

from ephys2expr.recordings.settings import FeaturesSettings


@dataclass
class Spikes:
    """The spikes of one window: sample indices, times (s) and widths (ms)."""

    threshold: np.ndarray
    peak: np.ndarray
    trough: np.ndarray
    fast_trough: np.ndarray
    width_ms: np.ndarray
    fs: float

    def __len__(self) -> int:
        return len(self.peak)

    @property
    def times(self) -> np.ndarray:
        """Threshold times (s from the start of the sweep)."""
        return self.threshold / self.fs


@lru_cache(maxsize=32)
def _bessel(cutoff: float, fs: float):
    return signal.bessel(4, cutoff / (fs / 2.0), btype="low", output="sos")


def filtered(v: np.ndarray, fs: float, settings: FeaturesSettings) -> np.ndarray:
    """``v`` low-passed at the cutoff that follows the sampling rate ``fs``."""
    sos = _bessel(settings.cutoff_hz(fs), float(fs))
    return signal.sosfiltfilt(sos, v)


def dvdt(vf: np.ndarray, fs: float) -> np.ndarray:
    """dV/dt in mV/ms of a filtered trace (mV), same length (one-sided at the ends)."""
    return np.gradient(vf) * (fs / 1000.0)


def _half_width(v, thr, peak, trough, fs) -> float:
    """Full width (ms) at half of peak - trough (or peak - threshold if that is lower)."""
    level = (v[peak] + v[trough]) / 2.0
    if level < v[thr]:
        level = (v[peak] + v[thr]) / 2.0
    rise = v[thr : peak + 1]
    left = np.flatnonzero(rise >= level)
    fall = v[peak : trough + 1]
    right = np.flatnonzero(fall <= level)
    if left.size == 0 or right.size == 0 or left[0] == 0:
        return float("nan")
    i = thr + left[0]  # first sample at or above the level: interpolate with the one before
    t_left = i - 1 + (level - v[i - 1]) / (v[i] - v[i - 1])
    j = peak + right[0]
    t_right = j - 1 + (v[j - 1] - level) / (v[j - 1] - v[j])
    return float((t_right - t_left) / fs * 1000.0)


def find_spikes(
    v: np.ndarray, fs: float, start: int, end: int, settings: FeaturesSettings
) -> Spikes:
    """Spikes whose upstroke starts in samples ``[start, end)`` of ``v`` (mV, rate ``fs``)."""
    lo = max(start - int(0.002 * fs), 0)  # room before the first crossing for the threshold
    hi = min(end + int(settings.fast_trough_ms * fs / 1000.0) + 1, len(v))
    vv = v[lo:hi]
    vf = filtered(vv, fs, settings) if len(vv) > 15 else vv
    dv = dvdt(vf, fs)
    above = dv >= settings.dvdt_threshold
    ups = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    ups = ups[(ups >= start - lo) & (ups < end - lo)]
    empty = np.array([], dtype=int)
    if ups.size == 0:
        return Spikes(empty, empty, empty, empty, np.array([]), fs)
    # ipfx max_interval: the peak comes within 5 ms of the upstroke (a step's onset
    # transient also crosses 20 mV/ms, but keeps rising for longer and never comes down)
    fast_n = int(round(settings.fast_trough_ms * fs / 1000.0))
    bounds = np.minimum(np.append(ups[1:], min(end - lo, len(vv))), ups + fast_n)
    peaks = np.array(
        [u + int(np.argmax(vv[u : max(b, u + 1)])) for u, b in zip(ups, bounds, strict=True)]
    )
    after = np.array([vv[p : p + fast_n + 1].min() for p in peaks])
    ok = (
        (vv[peaks] - vv[ups] >= settings.min_height)
        & (vv[peaks] > settings.min_peak)
        & (peaks < bounds - 1)  # a maximum at the window's edge is still rising
        & (vv[peaks] - after >= settings.min_height)  # and it comes down again
    )
    ups, peaks = ups[ok], peaks[ok]
    if ups.size == 0:
        return Spikes(empty, empty, empty, empty, np.array([]), fs)
    thresholds = []
    previous = start - lo  # as ipfx: the search back stops at the window's start
    for u, p in zip(ups, peaks, strict=True):
        stroke = u + int(np.argmax(dv[u : p + 1]))
        below = np.flatnonzero(
            dv[previous : stroke + 1] <= settings.threshold_fraction * dv[stroke]
        )
        thresholds.append(previous + below[-1] if below.size else u)
        previous = p
    thresholds = np.array(thresholds, dtype=int)
    # the last spike's trough lies before the window's end (ipfx: the step's end), not in
    # the decay after the step
    nxt = np.append(thresholds[1:], max(min(end - lo, len(vv) - 1), peaks[-1] + 1))
    troughs = np.array(
        [p + int(np.argmin(vv[p : max(n, p + 1)])) for p, n in zip(peaks, nxt, strict=True)]
    )
    fast = np.array(
        [
            p + int(np.argmin(vv[p : max(min(n, p + fast_n), p + 1)]))
            for p, n in zip(peaks, nxt, strict=True)
        ]
    )
    widths = np.array(
        [_half_width(vv, a, b, c, fs) for a, b, c in zip(thresholds, peaks, troughs, strict=True)]
    )
    return Spikes(thresholds + lo, peaks + lo, troughs + lo, fast + lo, widths, fs)


__all__ = ["Spikes", "dvdt", "filtered", "find_spikes"]
