"""The independent extractor: eFEL (BlueBrain, LGPL; a dev/test-only dependency).

:func:`efel_features` measures each feature of a recording with eFEL's own definitions on
the sweeps our extractor chose for it (the ``<feature>_sweep`` columns), so a disagreement
is a difference of definition or detection, never of sweep choice. Used by
tests/test_recordings_efel.py (the agreement table of docs/features-from-recordings.md)
and benchmarks/bench_features.py (eFEL called directly, timed against our extractor).

eFEL settings: spikes cross ``Threshold`` = the cell's resting potential + 30 mV (eFEL's
fixed -20 mV default lies below the resting potential of 99111002.nwb, -11 mV);
everything else eFEL's defaults.
"""

from __future__ import annotations

import numpy as np

from ephys2expr.recordings.analysis import analyse
from ephys2expr.recordings.recording import Recording
from ephys2expr.recordings.settings import FeaturesSettings

PER_SWEEP = [
    "voltage_base",
    "steady_state_voltage_stimend",
    "minimum_voltage",
    "time_constant",
    "sag_ratio1",
    "AP_begin_voltage",
    "AP_amplitude",
    "spike_half_width",
    "min_AHP_values",
    "spike_count_stimint",
    "peak_time",
    "time_to_first_spike",
]


def _first(values, key):
    v = values.get(key)
    return float(v[0]) if v is not None and len(v) else np.nan


def efel_sweeps(rec: Recording, settings: FeaturesSettings, threshold_mv: float) -> dict:
    """eFEL's per-sweep values of every step sweep: ``{sweep number: (amplitude, values)}``."""
    import efel

    efel.reset()
    efel.set_setting("Threshold", float(threshold_mv))
    a = analyse(rec, settings)
    traces, meta = [], []
    for s in a.sweeps:
        fs, step = s.step.sweep.fs, s.step
        t_ms = np.arange(len(step.sweep.v)) * 1000.0 / fs
        traces.append(
            {
                "T": t_ms,
                "V": step.sweep.v,
                "stim_start": [step.onset * 1000.0 / fs],
                "stim_end": [step.offset * 1000.0 / fs],
            }
        )
        meta.append((s.number, step.amplitude, step.duration))
    values = efel.get_feature_values(traces, PER_SWEEP, raise_warnings=False)
    for trace, v in zip(traces, values, strict=True):  # ISIs of the step's spikes only
        peaks = v.get("peak_time")
        peaks = np.array([] if peaks is None else peaks)
        inside = peaks[(peaks >= trace["stim_start"][0]) & (peaks < trace["stim_end"][0])]
        v["isi"] = np.diff(inside)
    return {n: (amp, dur, v) for (n, amp, dur), v in zip(meta, values, strict=True)}


def efel_features(rec: Recording, row: dict, settings: FeaturesSettings) -> dict[str, float]:
    """Each feature by eFEL on the sweeps of ``row`` (our extractor's output row)."""
    threshold = (row["rmp"] if np.isfinite(row["rmp"]) else -65.0) + 30.0
    per = efel_sweeps(rec, settings, threshold)

    def sweeps(name):
        return [int(x) for x in str(row[f"{name}_sweep"]).split()]

    def mean(name, key):
        vals = [_first(per[n][2], key) for n in sweeps(name) if n in per]
        vals = [v for v in vals if np.isfinite(v)]
        return float(np.mean(vals)) if vals else np.nan

    out = {"rmp": mean("rmp", "voltage_base")}
    used = [n for n in sweeps("rin") if n in per]
    amps = np.array([per[n][0] for n in used])
    ss = np.array([_first(per[n][2], "steady_state_voltage_stimend") for n in used])
    vb = np.array([_first(per[n][2], "voltage_base") for n in used])
    if len(used) >= 2:
        out["rin"] = float(np.polyfit(amps, ss, 1)[0] * 1000.0)
    elif len(used) == 1:
        out["rin"] = float((ss[0] - vb[0]) / amps[0] * 1000.0)
    else:
        out["rin"] = np.nan
    out["tau"] = mean("tau", "time_constant")
    out["cap"] = 1000.0 * out["tau"] / out["rin"]
    out["sag"] = mean("sag", "sag_ratio1")
    out["apthr"] = mean("apthr", "AP_begin_voltage")
    out["apamp"] = mean("apamp", "AP_amplitude")
    out["aphw"] = mean("aphw", "spike_half_width")
    out["ahpamp"] = out["apthr"] - mean("ahpamp", "min_AHP_values")
    out["latency"] = mean("latency", "time_to_first_spike") / 1000.0
    counts = {n: _first(v, "spike_count_stimint") for n, (_, _, v) in per.items()}
    depolarising = sorted((amp, n) for n, (amp, _, _) in per.items() if amp > 0)
    firing = [amp for amp, n in depolarising if counts[n] > 0]
    out["rheo"] = firing[0] if firing and np.isfinite(row["rheo"]) else np.nan
    rates = {n: counts[n] / per[n][1] for n in per}
    fmax = sweeps("maxfreq")
    out["maxfreq"] = rates[fmax[0]] if fmax else np.nan
    isi = per[fmax[0]][2]["isi"] if fmax else []
    out["adratio"] = float(isi[0] / np.mean(isi)) if len(isi) >= 2 else np.nan
    fi = sweeps("f_i_curve_slope")
    out["f_i_curve_slope"] = (
        float(np.polyfit([per[n][0] for n in fi], [rates[n] for n in fi], 1)[0])
        if len(fi) >= 2
        else np.nan
    )
    ratios = []
    for n in sweeps("isi_adapt"):
        isi = per[n][2]["isi"]
        if len(isi) >= 2:
            ratios.append(isi[1] / isi[0])
    out["isi_adapt"] = float(np.median(ratios)) if ratios else np.nan
    return out
