"""Features from raw recordings: each definition on a synthetic trace with a known answer,
the real ABF/NWB files, and every kind of bad recording (a reason, never a traceback)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ephys2expr.errors import InputError
from ephys2expr.features import PLAUSIBLE_RANGE
from ephys2expr.recordings.definitions import EXTRACTED
from ephys2expr.recordings.recording import Sweep
from ephys2expr.recordings.run import extract_features, read_recording, row_of
from ephys2expr.recordings.settings import FeaturesSettings
from ephys2expr.recordings.sweeps import find_steps
from stages.features import app
from tests.helpers import assert_one_line_exit_2, raises_one_line
from tests.recording_data import (
    HALF_WIDTH,
    ONSET,
    D,
    passive_sweep,
    recording,
    spiking_sweep,
    write_nwb,
)

SETTINGS = FeaturesSettings(n_jobs=1)
ISIS = [0.02, 0.03, 0.04, 0.05]  # s: an adapting train


def synthetic_cell(fs: float, r_mohm=150.0, tau_ms=20.0):
    """Hyperpolarising RC responses, a silent +50 pA step, rheobase 100 pA (one AP at 100 ms),
    150 pA (five APs with the intervals ISIS)."""
    sweeps = [passive_sweep(k, a, fs, r_mohm, tau_ms) for k, a in enumerate([-150, -100, -50])]
    times = 0.05 + np.cumsum([0, *ISIS])
    sweeps += [
        passive_sweep(3, 50, fs, r_mohm, tau_ms),
        spiking_sweep(4, 100, fs, [0.1]),
        spiking_sweep(5, 150, fs, times),
    ]
    return recording(sweeps)


@pytest.mark.parametrize("fs", [10_000, 20_000, 50_000])
def test_each_definition_on_a_cell_with_known_answers(fs):
    """Passive RC cell with known R and tau, injected APs of known threshold, height, width,
    AHP and rate; at 10 and 20 kHz too (the filter follows the sampling rate: ipfx's fixed
    10 kHz Bessel cannot even be designed at 10 or 20 kHz)."""
    row = row_of(synthetic_cell(fs), SETTINGS)
    assert row["rin"] == pytest.approx(150.0, rel=1e-3)
    assert row["tau"] == pytest.approx(20.0, rel=1e-3)
    assert row["cap"] == pytest.approx(1000 * 20.0 / 150.0, rel=2e-3)
    assert row["rmp"] == pytest.approx(-70.0, abs=1e-9)
    assert row["sag"] == pytest.approx(0.0, abs=1e-3)  # an RC cell does not sag
    assert row["rheo"] == 100.0 and row["rheo_sweep"] == "4"
    assert row["apthr"] == pytest.approx(-50.0, abs=0.1)  # the plateau the AP starts from
    assert row["apamp"] == pytest.approx(100.0, abs=0.1)
    assert row["aphw"] == pytest.approx(HALF_WIDTH, abs=0.01)
    assert row["ahpamp"] == pytest.approx(D, abs=0.05)
    assert row["latency"] == pytest.approx(0.1, abs=2 / fs)
    assert row["maxfreq"] == pytest.approx(5 / 1.0) and row["maxfreq_sweep"] == "5"
    assert row["adratio"] == pytest.approx(ISIS[0] / np.mean(ISIS), rel=1e-3)
    assert row["isi_adapt"] == pytest.approx(ISIS[1] / ISIS[0], rel=1e-3)
    assert row["f_i_curve_slope"] == pytest.approx((5 - 1) / 50, rel=1e-6)
    assert all(row[f"{f}_qc"] == "" for f in EXTRACTED) and row["qc"] == ""


def test_rin_and_tau_survive_noise_and_other_values():
    rec = recording(
        [
            passive_sweep(k, a, 20_000, 400.0, 45.0, noise=0.3, seed=k)
            for k, a in enumerate([-60, -40, -20])
        ]
    )
    row = row_of(rec, SETTINGS)
    assert row["rin"] == pytest.approx(400.0, rel=0.02)
    assert row["tau"] == pytest.approx(45.0, rel=0.03)
    assert row["rin_sweep"] == "2 1 0"


def test_sag_is_allens_and_taken_near_minus_100_mv():
    """A hyperpolarising response that overshoots and relaxes: sag = (V_peak - V_ss) /
    (V_peak - V_rest), on the sweep whose peak lies closest to -100 mV."""
    fs = 20_000
    sweeps = []
    for k, amp in enumerate([-300, -200, -100]):
        s = passive_sweep(k, amp, fs, 150.0, 10.0, rest=-70.0)
        t = np.arange(s.v.size) / fs - ONSET
        on = (t >= 0) & (t < 1.0)
        relax = -0.3 * amp * 150 / 1000 * (1 - np.exp(-t[on] / 0.1))  # h-current-like
        s.v[on] += relax
        sweeps.append(s)
    row = row_of(recording(sweeps), SETTINGS)
    # -200 pA: the trough near -70 - 30 + ... = about -98 mV, the closest to -100
    assert row["sag_sweep"] == "1"
    v = sweeps[1].v
    on = slice(int(ONSET * fs), int((ONSET + 1.0) * fs))
    peak = v[on].min()
    steady = v[on][-600:].mean()
    assert row["sag"] == pytest.approx((peak - steady) / (peak + 70.0), abs=0.01)


def test_steps_of_the_dual_protocol_are_the_long_square_not_the_test_step(raw_dir):
    rec = read_recording(raw_dir / "recordings" / "pyabf" / "171116sh_0018.abf")
    steps, reason = find_steps(rec, SETTINGS)
    assert reason == ""
    assert [s.amplitude for s in steps] == list(np.arange(-100.0, 301.0, 25.0))
    assert {(s.onset / s.sweep.fs, round(s.duration, 4)) for s in steps} == {(2937 / 20000, 0.5)}
    assert all(s.baseline.stop == s.onset for s in steps)


REAL = {  # cell id: (rheobase pA, the rheobase sweep, sampling kHz)
    "171116sh_0018": (50.0, "6", 20.0),
    "190619B_0003": (120.0, "4", 10.0),
    "File_axon_5": (200.0, "6", 20.0),
    "2019_07_24_0055_fsi": (np.nan, "5", 20.0),
    "99111002": (np.nan, "12", 10.0),
}


@pytest.fixture(scope="module")
def real_table(raw_dir):
    return extract_features([raw_dir / "recordings"], SETTINGS, progress=False)


def test_the_real_recordings(real_table):
    table = real_table
    assert sorted(table.index) == sorted(REAL)
    for cell, (rheo, sweep, khz) in REAL.items():
        row = table.loc[cell]
        assert row["rheo_sweep"] == sweep and row["sampling_khz"] == khz
        assert row["rheo"] == rheo or (np.isnan(rheo) and np.isnan(row["rheo"]))
    for f in EXTRACTED:
        if f in PLAUSIBLE_RANGE:
            assert PLAUSIBLE_RANGE[f].contains(table[f]).all(), f
    # the two spontaneously active cells (a fast-spiking interneuron; the NWB cell's events)
    assert table["rheo_qc"].str.startswith("spontaneously active").sum() == 2
    # the NWB file has no step in [-100, 0) pA: its smallest hyperpolarising one, noted
    assert table.loc["99111002", "rin_qc"].startswith("note: no step in [-100, 0) pA")
    # its rheobase sweep starts with an 8.5 mV onset transient that passes the Allen criteria:
    # kept (the definition), flagged (the QC)
    flagged = table["apthr_qc"].str.contains("(a transient?)", regex=False)
    assert list(table.index[flagged]) == ["99111002"]
    assert table.loc["171116sh_0018", "sag"] == pytest.approx(0.232, abs=0.002)
    assert table.loc["171116sh_0018", "rin"] == pytest.approx(137.3, abs=0.2)


def test_same_files_same_bytes_with_one_or_two_processes(raw_dir, tmp_path):
    out = []
    for jobs in (1, 2):
        path = tmp_path / f"f{jobs}.csv"
        res = _cli(["--input", raw_dir / "recordings", "--output", path, "--set", f"n_jobs={jobs}"])
        assert res.exit_code == 0, res.output
        out.append(path.read_bytes())
    assert out[0] == out[1]
    table = pd.read_csv(tmp_path / "f1.csv", index_col="cell_id")
    assert list(table.columns[: len(EXTRACTED)]) == EXTRACTED


# -- bad recordings: a reason per feature, what can be had, and no traceback -------------------


def _qc(row, feature):
    return row[f"{feature}_qc"]


def test_voltage_clamp_file(tmp_path):
    path = tmp_path / "vc.nwb"
    write_nwb(
        path,
        [passive_sweep(0, -50, 20_000)],
        series="VoltageClampSeries",
        v_unit="amperes",
        v_conv=1e-12,
    )
    row = row_of(read_recording(path), SETTINGS)
    assert all(np.isnan(row[f]) for f in EXTRACTED)
    assert _qc(row, "rin").startswith("voltage-clamp recording")
    assert "voltage clamp" in row["qc"]


def test_gap_free_file_gets_its_resting_potential(tmp_path):
    path = tmp_path / "gapfree.nwb"
    s = passive_sweep(0, 0, 20_000, rest=-66.0)
    write_nwb(path, [Sweep(0, s.v, None, s.fs)], stimulus=False)
    row = row_of(read_recording(path), SETTINGS)
    assert row["rmp"] == pytest.approx(-66.0, abs=1e-3)
    assert (
        _qc(row, "rmp") == "note: gap-free recording: no current steps: median membrane potential"
    )
    assert np.isnan(row["rin"]) and _qc(row, "rin") == "gap-free recording: no current steps"
    assert np.isnan(row["rheo"]) and _qc(row, "rheo") == "gap-free recording: no current steps"


def test_abf_in_voltage_clamp_or_without_a_stimulus(tmp_path):
    """ABF files written by pyABF's own writer: a channel in pA is voltage clamp; a
    current-clamp file without a command channel still gets its resting potential."""
    from pyabf.abfWriter import writeABF1

    data = np.random.default_rng(0).normal(-64.0, 0.5, (3, 4000)).astype(np.float32)
    writeABF1(data, str(tmp_path / "vc.abf"), 20000, units="pA")
    row = row_of(read_recording(tmp_path / "vc.abf"), SETTINGS)
    assert all(np.isnan(row[f]) for f in EXTRACTED)
    assert "voltage clamp (channel 0 in pA)" in row["qc"]
    writeABF1(data, str(tmp_path / "cc.abf"), 20000, units="mV")
    row = row_of(read_recording(tmp_path / "cc.abf"), SETTINGS)
    assert row["rmp"] == pytest.approx(-64.0, abs=0.05) and row["rmp_sweep"] == "0 1 2"
    assert (
        _qc(row, "rmp")
        == "note: no stimulus (command current) in the file: median membrane potential"
    )
    assert np.isnan(row["rin"]) and _qc(row, "rin") == "no stimulus (command current) in the file"


def test_no_hyperpolarising_sweep():
    rec = synthetic_cell(20_000)
    rec.sweeps = rec.sweeps[3:]
    row = row_of(rec, SETTINGS)
    for f in ("rin", "tau", "sag", "cap"):
        assert np.isnan(row[f]) and _qc(row, f) == "no hyperpolarising step without spikes"
    assert row["rheo"] == 100.0 and row["aphw"] == pytest.approx(HALF_WIDTH, abs=0.01)


def test_no_sweep_that_spikes():
    rec = synthetic_cell(20_000)
    rec.sweeps = rec.sweeps[:4]
    row = row_of(rec, SETTINGS)
    for f in ("rheo", "apthr", "apamp", "aphw", "ahpamp", "maxfreq", "adratio", "latency"):
        assert np.isnan(row[f]) and _qc(row, f) == "no sweep spikes (largest step +50 pA)"
    assert row["rin"] == pytest.approx(150.0, rel=1e-3)


def test_spontaneously_active_cell(raw_dir):
    row = row_of(
        read_recording(raw_dir / "recordings" / "pyabf" / "2019_07_24_0055_fsi.abf"), SETTINGS
    )
    assert np.isnan(row["rheo"]) and _qc(row, "rheo").startswith("spontaneously active")
    # the spikes' shape still comes from the lowest depolarising step that fires, noted
    assert np.isfinite(row["aphw"]) and _qc(row, "aphw").startswith("note: spontaneously")
    # the resting potential from the baselines without spikes only
    assert len(row["rmp_sweep"].split()) < row["n_sweeps"]


def test_depolarisation_block_excludes_the_blocked_steps():
    fs = 20_000
    rec = synthetic_cell(fs)
    blocked = spiking_sweep(6, 300, fs, [0.02, 0.035, 0.05], plateau=-50.0)
    t = np.arange(blocked.v.size) / fs - ONSET
    blocked.v[(t > 0.1) & (t < 1.0)] = -30.0  # stuck above threshold after three APs
    rec.sweeps.append(blocked)
    row = row_of(rec, SETTINGS)
    assert "depolarisation block from +300 pA" in row["qc"]
    assert row["maxfreq"] == pytest.approx(5.0) and row["maxfreq_sweep"] == "5"
    assert _qc(row, "maxfreq").startswith("note: depolarisation block from +300 pA")
    assert row["f_i_curve_slope_sweep"] == "4 5"


def test_1_khz_sampling_keeps_the_passive_features(raw_dir):
    rec = read_recording(raw_dir / "recordings" / "pyabf" / "171116sh_0018.abf")
    full = row_of(rec, SETTINGS)
    for s in rec.sweeps:
        s.v, s.i, s.fs = s.v[::20], s.i[::20], 1000.0
    row = row_of(rec, SETTINGS)
    assert row["rin"] == pytest.approx(full["rin"], rel=0.02)
    assert row["rmp"] == pytest.approx(full["rmp"], abs=0.2)
    assert row["tau"] == pytest.approx(full["tau"], rel=0.1)
    for f in ("rheo", "apthr", "aphw", "maxfreq"):
        assert np.isnan(row[f]) and _qc(row, f).startswith("sampled at 1 kHz, below")


def _cli(args):
    return CliRunner().invoke(app, [str(a) for a in [*args, "--no-progress"]])


def test_truncated_or_corrupt_files_fail_with_one_line(raw_dir, tmp_path):
    src = (raw_dir / "recordings" / "pyabf" / "171116sh_0018.abf").read_bytes()
    (tmp_path / "cut.abf").write_bytes(src[: len(src) // 2])
    res = _cli(["--input", tmp_path / "cut.abf", "--output", tmp_path / "o.csv"])
    assert_one_line_exit_2(res, "cut.abf", "truncated or corrupt")
    (tmp_path / "junk.nwb").write_bytes(b"\x89HDF\r\n" + bytes(range(256)) * 8)
    res = _cli(["--input", tmp_path / "junk.nwb", "--output", tmp_path / "o.csv"])
    assert_one_line_exit_2(res, "junk.nwb", "not a readable NWB")
    nwb = (raw_dir / "recordings" / "bluepyefe" / "99111002.nwb").read_bytes()
    (tmp_path / "half.nwb").write_bytes(nwb[: len(nwb) // 2])
    res = _cli(["--input", tmp_path / "half.nwb", "--output", tmp_path / "o.csv"])
    assert_one_line_exit_2(res, "half.nwb")
    assert not (tmp_path / "o.csv").exists()


def test_wrong_units_are_refused_naming_the_file(tmp_path):
    s = passive_sweep(0, -50, 20_000)
    write_nwb(tmp_path / "celsius.nwb", [s], v_unit="degC")
    raises_one_line(
        "celsius.nwb.*'degC', not a voltage unit", read_recording, tmp_path / "celsius.nwb"
    )
    write_nwb(tmp_path / "volts.nwb", [s], v_unit="volts", v_conv=1e-6)  # mV stored as V
    raises_one_line(
        "volts.nwb.*volts labelled as millivolts", read_recording, tmp_path / "volts.nwb"
    )
    write_nwb(tmp_path / "stim.nwb", [s], i_unit="volts")
    raises_one_line("stim.nwb.*not a current unit", read_recording, tmp_path / "stim.nwb")


def test_inputs_that_are_not_recordings(tmp_path):
    raises_one_line("no .abf or .nwb file", extract_features, [tmp_path], SETTINGS)
    raises_one_line("no such file or folder", extract_features, [tmp_path / "x"], SETTINGS)
    res = _cli(["--input", tmp_path, "--output", tmp_path / "o.xlsx"])
    assert_one_line_exit_2(res, "o.xlsx", ".csv or .parquet")
    res = _cli(["--input", tmp_path, "--output", tmp_path / "o.csv", "-S", "filter_fraction=0.7"])
    assert_one_line_exit_2(res, "features.filter_fraction")


def test_settings_are_checked():
    with pytest.raises(InputError, match="rin_min_pa"):
        dataclasses.replace(SETTINGS, rin_min_pa=10.0)


def test_prepare_recordings_names_folders():
    from ephys2expr.prepare.settings import PrepareSettings

    assert PrepareSettings().recordings == {"examples": "data/raw/recordings"}
    raises_one_line(
        "prepare.recordings.a b: not a usable name",
        PrepareSettings.from_params,
        {"prepare": {"recordings": {"a b": "x"}}},
    )
    raises_one_line(
        "prepare.recordings.x: expected a folder",
        PrepareSettings.from_params,
        {"prepare": {"recordings": {"x": ""}}},
    )


def test_the_filter_follows_the_sampling_rate():
    """ipfx's fixed 10 kHz Bessel cannot be designed at 20 kHz sampling (Nyquist 10 kHz) nor
    at 10 kHz; ours is 0.4 x the rate there and 10 kHz from 25 kHz up."""
    from scipy import signal

    with pytest.raises(ValueError):
        signal.bessel(4, 10_000 / (20_000 / 2), btype="low")
    assert [SETTINGS.cutoff_hz(fs) for fs in (1e3, 1e4, 2e4, 2.5e4, 5e4)] == [
        400.0,
        4_000.0,
        8_000.0,
        10_000.0,
        10_000.0,
    ]


def test_the_junction_potential_shifts_absolute_voltages_only():
    rec = synthetic_cell(20_000)
    plain = row_of(rec, SETTINGS)
    shifted = row_of(rec, dataclasses.replace(SETTINGS, junction_potential_mv=12.0))
    assert shifted["rmp"] == pytest.approx(plain["rmp"] - 12.0)
    assert shifted["apthr"] == pytest.approx(plain["apthr"] - 12.0)
    for f in ("apamp", "ahpamp", "rin", "tau", "aphw", "sag"):
        assert shifted[f] == pytest.approx(plain[f])
