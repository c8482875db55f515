"""Synthetic recordings with known answers, and small NWB files written with h5py."""

from __future__ import annotations

import numpy as np

from ephys2expr.recordings.recording import Recording, Sweep

ONSET, DURATION, LENGTH = 0.2, 1.0, 1.5  # s: step onset, step length, sweep length


def passive_sweep(
    number, amp_pa, fs, r_mohm=150.0, tau_ms=20.0, rest=-70.0, noise=0.0, seed=0
) -> Sweep:
    """An RC cell's response to a step of ``amp_pa``: V = rest + I R (1 - exp(-t / tau))."""
    t = np.arange(int(LENGTH * fs)) / fs
    i = np.where((t >= ONSET) & (t < ONSET + DURATION), amp_pa, 0.0)
    v = np.full_like(t, rest)
    dv = amp_pa * r_mohm / 1000.0  # pA * MOhm = uV * 1e3 -> mV / 1000
    on = (t >= ONSET) & (t < ONSET + DURATION)
    v[on] += dv * (1 - np.exp(-(t[on] - ONSET) / (tau_ms / 1000)))
    off = t >= ONSET + DURATION
    v[off] += (
        dv
        * (1 - np.exp(-DURATION / (tau_ms / 1000)))
        * np.exp(-(t[off] - ONSET - DURATION) / (tau_ms / 1000))
    )
    if noise:
        v += np.random.default_rng(seed).normal(0, noise, v.size)
    return Sweep(number, v, i, float(fs))


# The injected action potential: a cosine rise of A mV over TR ms from the plateau (the
# threshold), a cosine fall of A + D over TF ms to D below it (the fast trough), then back to
# the plateau with a 2 ms time constant.
A, D, TR, TF = 100.0, 10.0, 0.5, 1.0
HALF_WIDTH = TR * (1 - np.arccos(D / A) / np.pi) + TF / 2  # ms, at (peak + trough) / 2


def spike_shape(s_ms: np.ndarray) -> np.ndarray:
    """The AP relative to its threshold, at ``s_ms`` ms after it starts (0 before)."""
    out = np.zeros_like(s_ms)
    rise = (s_ms >= 0) & (s_ms < TR)
    out[rise] = A * (1 - np.cos(np.pi * s_ms[rise] / TR)) / 2
    fall = (s_ms >= TR) & (s_ms < TR + TF)
    out[fall] = A - (A + D) * (1 - np.cos(np.pi * (s_ms[fall] - TR) / TF)) / 2
    after = s_ms >= TR + TF
    out[after] = -D * np.exp(-(s_ms[after] - TR - TF) / 2.0)
    return out


def spiking_sweep(number, amp_pa, fs, spike_times, plateau=-50.0, rest=-70.0) -> Sweep:
    """A step that holds the cell at ``plateau`` mV with APs starting at ``spike_times`` (s
    from the step onset); the plateau is reached with a 5 ms time constant."""
    t = np.arange(int(LENGTH * fs)) / fs
    i = np.where((t >= ONSET) & (t < ONSET + DURATION), amp_pa, 0.0)
    v = np.full_like(t, rest)
    on = (t >= ONSET) & (t < ONSET + DURATION)
    v[on] += (plateau - rest) * (1 - np.exp(-(t[on] - ONSET) / 0.005))
    off = t >= ONSET + DURATION
    v[off] += (plateau - rest) * np.exp(-(t[off] - ONSET - DURATION) / 0.005)
    for ts in spike_times:
        v += spike_shape((t - ONSET - ts) * 1000.0)
    return Sweep(number, v, i, float(fs))


def recording(sweeps, name="synthetic", **kw) -> Recording:
    return Recording(f"{name}.abf", name, list(sweeps), **kw)


def write_nwb(
    path,
    sweeps,
    series="CurrentClampSeries",
    v_unit="volts",
    v_conv=1e-3,
    stimulus=True,
    i_unit="amperes",
) -> None:
    """A minimal NWB 2 file (the layout of the BluePyEfe test file): one acquisition series
    per sweep (values in mV x ``v_conv`` = ``v_unit``), its stimulus in pA x 1e-12 A."""
    import h5py

    with h5py.File(path, "w") as fh:
        fh.attrs["nwb_version"] = "2.4.0"
        fh["identifier"] = "test"
        for s in sweeps:
            g = fh.create_group(f"acquisition/ic__Step__{s.number}")
            g.attrs["neurodata_type"] = series
            d = g.create_dataset("data", data=s.v.astype(np.float32))
            d.attrs["unit"], d.attrs["conversion"] = v_unit, v_conv
            g.create_dataset("starting_time", data=0.0).attrs["rate"] = s.fs
            if stimulus and s.i is not None:
                g = fh.create_group(f"stimulus/presentation/ics__Step__{s.number}")
                g.attrs["neurodata_type"] = series.replace("Series", "StimulusSeries")
                d = g.create_dataset("data", data=s.i * 1e-3)
                d.attrs["unit"], d.attrs["conversion"] = i_unit, 1e-9
                g.create_dataset("starting_time", data=0.0).attrs["rate"] = s.fs
