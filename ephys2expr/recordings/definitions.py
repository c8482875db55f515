"""One function per feature: the Allen Cell Types (ipfx) definition where there is one.

Each function takes the :class:`~ephys2expr.recordings.analysis.Analysis` of a recording
and returns a :class:`Value`: the number (NaN when it cannot be had), the sweeps it came
from and, when NaN or measured with a caveat, one line saying why. The table of
definitions, with the Allen name each matches, is docs/features-from-recordings.md.
Units: mV, MOhm, ms, pA, Hz, pF, s (ephys2expr/features.py).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from ephys2expr.recordings.analysis import Analysis, StepSweep


@dataclass
class Value:
    """A feature's value, the sweeps used and (if NaN or noteworthy) why."""

    value: float = np.nan
    sweeps: tuple[int, ...] = ()
    reason: str = ""


def _nan(reason: str) -> Value:
    return Value(np.nan, (), reason)


def _ms(n: float, fs: float) -> int:
    return int(round(n * fs / 1000.0))


# -- sweeps every feature chooses from ---------------------------------------------------------


def hyperpolarising(a: Analysis) -> list[StepSweep]:
    """Hyperpolarising steps without a spike in them (from -0 towards the most negative)."""
    return [s for s in a.ordered(-1) if not s.spiking]


def passive_sweeps(a: Analysis) -> tuple[list[StepSweep], str]:
    """The sweeps of rin and tau: hyperpolarising, no spike, amplitude >= ``rin_min_pa``
    (ipfx ``subthresh_min_amp``, -100 pA); none there: the smallest hyperpolarising one."""
    hyper = hyperpolarising(a)
    if not hyper:
        return [], a.reason or "no hyperpolarising step without spikes"
    chosen = [s for s in hyper if s.step.amplitude >= a.settings.rin_min_pa - 1e-6]
    if chosen:
        return chosen, ""
    first = hyper[0]
    return [first], (
        f"note: no step in [{a.settings.rin_min_pa:g}, 0) pA; used the smallest, "
        f"{first.step.amplitude:g} pA"
    )


def rheobase_sweep(a: Analysis) -> tuple[StepSweep | None, str]:
    """The lowest depolarising step with a spike (Allen's rheobase sweep)."""
    if a.reason:
        return None, a.reason
    if a.spike_reason:
        return None, a.spike_reason
    spiking = [s for s in a.ordered(1) if s.spiking]
    if not spiking:
        top = max((s.step.amplitude for s in a.sweeps), default=np.nan)
        return None, f"no sweep spikes (largest step {top:+g} pA)"
    return spiking[0], (f"note: {a.spontaneous}" if a.spontaneous else "")


def before_block(a: Analysis) -> list[StepSweep]:
    """Depolarising steps below the depolarisation block (all of them without block)."""
    return [s for s in a.ordered(1) if a.block_from is None or s.step.amplitude < a.block_from]


def _block_note(a: Analysis) -> str:
    if a.block_from is None:
        return ""
    return f"note: depolarisation block from {a.block_from:+g} pA; steps from there excluded"


# -- passive features --------------------------------------------------------------------------


def rmp(a: Analysis) -> Value:
    """Resting potential: mean baseline (``baseline_ms`` before the step) over the sweeps
    with no spike in their baseline (Allen ``vrest``); without any current injected
    (gap-free, no command channel): the median potential."""
    ljp = a.settings.junction_potential_mv
    rec = a.recording
    if rec.clamp == "current" and rec.sweeps and all(s.i is None for s in rec.sweeps):
        # no current injected at all (gap-free, or no command channel): the median potential
        v = np.concatenate([s.v for s in rec.sweeps])
        return Value(
            float(np.median(v)) - ljp,
            tuple(s.number for s in rec.sweeps),
            f"note: {a.reason}: median membrane potential",
        )
    if a.reason:
        return _nan(a.reason)
    quiet = [s for s in a.sweeps if s.baseline_spikes == 0]
    if not quiet:
        return _nan(a.spontaneous or "every baseline has spikes")
    values = [np.mean(s.step.sweep.v[s.step.baseline]) for s in quiet]
    return Value(float(np.mean(values)) - ljp, tuple(s.number for s in quiet))


def rin(a: Analysis) -> Value:
    """Input resistance: slope of the peak (minimum) voltage against the step amplitude over
    the passive sweeps (ipfx ``input_resistance``; one sweep: deflection / amplitude)."""
    chosen, note = passive_sweeps(a)
    if not chosen:
        return _nan(note)
    amps = np.array([s.step.amplitude for s in chosen])
    vmin = np.array([s.step.sweep.v[s.step.onset : s.step.offset].min() for s in chosen])
    if len(chosen) == 1:
        base = np.mean(chosen[0].step.sweep.v[chosen[0].step.baseline])
        slope = (vmin[0] - base) / amps[0]
    else:
        slope = np.polyfit(amps, vmin, 1)[0]
    return Value(float(slope * 1000.0), tuple(s.number for s in chosen), note)


def _exp(t, y0, a, inv_tau):
    return y0 + a * np.exp(-inv_tau * t)


def sweep_tau(s: StepSweep, fraction: float) -> float:
    """Time constant (ms) of one hyperpolarising sweep: exponential fit from where the
    deflection first reaches ``fraction`` of its peak to the peak (ipfx ``time_constant``)."""
    v, fs, step = s.step.sweep.v, s.step.sweep.fs, s.step
    base = float(np.mean(v[step.baseline]))
    seg = v[step.onset : step.offset]
    peak = int(np.argmin(seg))
    reached = np.flatnonzero(seg[: peak + 1] <= base + fraction * (seg[peak] - base))
    if reached.size == 0 or peak - reached[0] < 5:
        return np.nan
    y = seg[reached[0] : peak + 1]
    t = np.arange(y.size) / fs
    guess = (y[-1], y[0] - y[-1], 3.0 / max(t[-1], 1.0 / fs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            (_, _, inv_tau), _ = curve_fit(_exp, t, y, p0=guess, maxfev=2000)
        except (RuntimeError, ValueError):
            return np.nan
    return 1000.0 / inv_tau if inv_tau > 0 else np.nan


def tau(a: Analysis) -> Value:
    """Membrane time constant: mean of :func:`sweep_tau` over the passive sweeps (ipfx)."""
    chosen, note = passive_sweeps(a)
    if not chosen:
        return _nan(note)
    taus = np.array([sweep_tau(s, a.settings.tau_fraction) for s in chosen])
    ok = np.isfinite(taus)
    if not ok.any():
        return _nan("the exponential fit failed on every passive sweep")
    used = tuple(s.number for s, good in zip(chosen, ok, strict=True) if good)
    return Value(float(np.mean(taus[ok])), used, note)


def sag(a: Analysis) -> Value:
    """Sag (Allen): (V_peak - V_steady) / (V_peak - V_baseline) on the hyperpolarising
    sweep whose peak is closest to ``sag_target_mv`` (-100 mV); V_peak averaged over
    ``sag_peak_ms`` around the minimum, V_steady and V_baseline over ``sag_steady_ms``.
    Scala's sag ratio r is V_peak-based too: Allen sag = 1 - 1/r (readers/scala.py)."""
    hyper = hyperpolarising(a)
    if not hyper:
        return _nan(a.reason or "no hyperpolarising step without spikes")
    st = a.settings
    mins = [s.step.sweep.v[s.step.onset : s.step.offset].min() for s in hyper]
    s = hyper[int(np.argmin(np.abs(np.array(mins) - st.sag_target_mv)))]
    v, fs, step = s.step.sweep.v, s.step.sweep.fs, s.step
    peak = step.onset + int(np.argmin(v[step.onset : step.offset]))
    half = max(_ms(st.sag_peak_ms / 2, fs), 1)
    v_peak = np.mean(v[max(peak - half, step.onset) : peak + half])
    v_steady = np.mean(v[step.offset - max(_ms(st.sag_steady_ms, fs), 1) : step.offset])
    base = v[step.baseline]
    v_base = np.mean(base[-max(_ms(st.sag_steady_ms, fs), 1) :])
    return Value(float((v_peak - v_steady) / (v_peak - v_base)), (s.number,))


def cap(a: Analysis, tau_v: Value, rin_v: Value) -> Value:
    """Capacitance: 1000 * tau / rin (pF, tau in ms, rin in MOhm), as for the Allen cells."""
    if np.isnan(tau_v.value) or np.isnan(rin_v.value):
        return _nan(tau_v.reason if np.isnan(tau_v.value) else rin_v.reason)
    return Value(1000.0 * tau_v.value / rin_v.value, tau_v.sweeps, tau_v.reason)


# -- spike features ----------------------------------------------------------------------------


def rheo(a: Analysis) -> Value:
    """Rheobase: amplitude (pA) of the lowest depolarising step with a spike (Allen
    ``threshold_i_long_square``); NaN for a spontaneously active cell (it needs no current)."""
    s, note = rheobase_sweep(a)
    if s is None:
        return _nan(note)
    if a.spontaneous:
        return Value(np.nan, (s.number,), a.spontaneous)
    return Value(s.step.amplitude, (s.number,))


# A first spike lower than this share of the sweep's other spikes' median height is flagged
# (a step-onset transient passes the Allen criteria too; the value is kept, the QC says so)
LOW_FIRST_SPIKE = 0.5


def _first_spike(a: Analysis, measure) -> Value:
    s, note = rheobase_sweep(a)
    if s is None:
        return _nan(note)
    value = float(measure(s.step.sweep.v, s.spikes, s.step))
    if not np.isfinite(value):
        return Value(value, (s.number,), "the first spike's shape could not be measured")
    v, sp = s.step.sweep.v, s.spikes
    heights = v[sp.peak] - v[sp.threshold]
    if len(heights) > 1 and heights[0] < LOW_FIRST_SPIKE * np.median(heights[1:]):
        low = (
            f"note: the first spike is {heights[0]:.1f} mV high, the others "
            f"{np.median(heights[1:]):.1f} mV (a transient?)"
        )
        note = f"{note}; {low}" if note else low
    return Value(value, (s.number,), note)


def apthr(a: Analysis) -> Value:
    """AP threshold (mV): first spike of the rheobase sweep, where dV/dt falls below 5 % of
    its maximum upstroke (Allen ``threshold_v_long_square``)."""
    ljp = a.settings.junction_potential_mv
    return _first_spike(a, lambda v, sp, st: v[sp.threshold[0]] - ljp)


def apamp(a: Analysis) -> Value:
    """AP amplitude (mV): peak - threshold of that spike (Allen ``peak_v_long_square`` -
    ``threshold_v_long_square``)."""
    return _first_spike(a, lambda v, sp, st: v[sp.peak[0]] - v[sp.threshold[0]])


def aphw(a: Analysis) -> Value:
    """AP half-width (ms): full width at half of peak - trough of that spike (Allen
    ``rheo_first_spike_hw`` x 1000)."""
    return _first_spike(a, lambda v, sp, st: sp.width_ms[0])


def ahpamp(a: Analysis) -> Value:
    """AHP amplitude (mV): threshold - fast trough (minimum within 5 ms of the peak) of that
    spike (Allen ``threshold_v_long_square`` - ``fast_trough_v_long_square``)."""
    return _first_spike(a, lambda v, sp, st: v[sp.threshold[0]] - v[sp.fast_trough[0]])


def latency(a: Analysis) -> Value:
    """Latency (s): step onset to the first spike's threshold on the rheobase sweep (Allen)."""
    return _first_spike(a, lambda v, sp, st: (sp.threshold[0] - st.onset) / st.sweep.fs)


def max_rate_sweep(a: Analysis) -> tuple[StepSweep | None, str]:
    """The depolarising step (below any depolarisation block) with the highest mean rate."""
    s, note = rheobase_sweep(a)
    if s is None:
        return None, note
    candidates = [x for x in before_block(a) if x.spiking] or [s]
    best = max(candidates, key=lambda x: (x.rate, -x.step.amplitude))
    return best, _block_note(a)


def maxfreq(a: Analysis) -> Value:
    """Maximum firing rate (Hz): spikes / step duration, highest over the depolarising
    steps below any depolarisation block (Allen ``max_rate_long_square``)."""
    s, note = max_rate_sweep(a)
    if s is None:
        return _nan(note)
    return Value(s.rate, (s.number,), note)


def adratio(a: Analysis) -> Value:
    """Adaptation ratio: first ISI / mean ISI on the max-rate sweep (Allen
    ``max_rate_first_mean_adratio``); needs 3 spikes. Not Allen's ``adaptation`` (mean
    normalised ISI difference) nor Scala's ``isi_adapt`` (2nd / 1st ISI)."""
    s, note = max_rate_sweep(a)
    if s is None:
        return _nan(note)
    isi = np.diff(s.spikes.times)
    if isi.size < 2:
        return Value(np.nan, (s.number,), f"{len(s.spikes)} spike(s) on the max-rate sweep")
    return Value(float(isi[0] / isi.mean()), (s.number,), note)


def f_i_curve_slope(a: Analysis) -> Value:
    """f-I slope (Hz/pA): least-squares slope of rate against amplitude over the steps from
    rheobase up, below any depolarisation block (Allen ``f_i_curve_slope``)."""
    s, note = rheobase_sweep(a)
    if s is None:
        return _nan(note)
    supra = [x for x in before_block(a) if x.step.amplitude >= s.step.amplitude]
    if len(supra) < 2:
        return Value(np.nan, (s.number,), "one suprathreshold step only")
    amps = np.array([x.step.amplitude for x in supra])
    rates = np.array([x.rate for x in supra])
    return Value(
        float(np.polyfit(amps, rates, 1)[0]), tuple(x.number for x in supra), _block_note(a)
    )


def isi_adapt(a: Analysis) -> Value:
    """Scala et al. 2021's ISI adaptation index: 2nd ISI / 1st ISI, median over the first 5
    depolarising steps with 3 or more spikes. Its own column, never ``adratio``."""
    s, note = rheobase_sweep(a)
    if s is None:
        return _nan(note)
    ratios, used = [], []
    for x in before_block(a):
        if x.spikes is not None and len(x.spikes) >= 3 and len(ratios) < 5:
            isi = np.diff(x.spikes.times)
            ratios.append(isi[1] / isi[0])
            used.append(x.number)
    if not ratios:
        return _nan("no step with 3 or more spikes")
    return Value(float(np.median(ratios)), tuple(used), _block_note(a))


# The features extracted from a recording, in output order: the project's 15 names where
# defined here (ephys2expr/features.py) plus Scala's isi_adapt; avg_isi is not extracted.
FEATURE_FUNCTIONS = {
    "rin": rin,
    "rmp": rmp,
    "apthr": apthr,
    "apamp": apamp,
    "aphw": aphw,
    "tau": tau,
    "ahpamp": ahpamp,
    "rheo": rheo,
    "maxfreq": maxfreq,
    "adratio": adratio,
    "sag": sag,
    "f_i_curve_slope": f_i_curve_slope,
    "latency": latency,
    "isi_adapt": isi_adapt,
}
EXTRACTED: list[str] = [*list(FEATURE_FUNCTIONS)[:9], "cap", *list(FEATURE_FUNCTIONS)[9:]]


def extract(a: Analysis) -> dict[str, Value]:
    """Every feature of :data:`EXTRACTED` for the analysed recording ``a``."""
    values = {name: fn(a) for name, fn in FEATURE_FUNCTIONS.items()}
    values["cap"] = cap(a, values["tau"], values["rin"])
    return {name: values[name] for name in EXTRACTED}
