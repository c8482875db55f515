"""Our extractor against an independent one (eFEL) on every shared recording.

Each feature agrees within its tolerance (:data:`TOLERANCE`), or the (feature, cell) pair is
a documented disagreement over 10 % with its cause (:data:`CAUSES`; the table in
docs/features-from-recordings.md, "Checked against eFEL"). eFEL measures on the sweeps our
extractor chose (tests/efel_reference.py), so sweep choice never explains a difference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ephys2expr.recordings.definitions import EXTRACTED
from ephys2expr.recordings.run import list_recordings, read_recording, row_of
from ephys2expr.recordings.settings import FeaturesSettings

pytest.importorskip("efel")  # a dev dependency (pyproject [dev])

# (tolerance, "rel" | "abs") per feature: where the two definitions coincide
TOLERANCE = {
    "rin": (0.10, "rel"),
    "rmp": (0.05, "rel"),
    "apthr": (2.5, "abs"),
    "apamp": (0.02, "rel"),
    "aphw": (0.11, "rel"),
    "tau": (0.10, "rel"),
    "ahpamp": (2.5, "abs"),
    "rheo": (0.0, "abs"),
    "maxfreq": (0.05, "rel"),
    "cap": (0.10, "rel"),
    "adratio": (0.03, "rel"),
    "sag": (0.04, "abs"),
    "f_i_curve_slope": (0.03, "rel"),
    "latency": (0.005, "abs"),
    "isi_adapt": (0.01, "rel"),
}

PEAK = "definition: Allen's rin uses the peak (minimum) voltage, eFEL's the steady state"
TAU = "definition: ipfx fits from 10 % of the deflection to its peak, eFEL its own window"
ONSET = (
    "detection: a step-onset transient of 99111002 (8.5 mV, falls again) passes ipfx's "
    "criteria as the first spike; eFEL's voltage threshold ignores it"
)
PLATEAU = (
    "detection: eFEL's voltage threshold (rest + 30 mV) misses 190619B's spikes riding "
    "on a depolarised plateau (1 spike at 420 pA, ours 16)"
)
CAUSES = {
    ("rin", "171116sh_0018"): PEAK + " (this cell sags: sag 0.23)",
    ("rin", "99111002"): PEAK + " (one -200 pA sweep; its minimum includes the noise)",
    ("tau", "171116sh_0018"): TAU,
    ("tau", "File_axon_5"): TAU,
    ("tau", "190619B_0003"): TAU,
    ("cap", "171116sh_0018"): "from tau and rin",
    ("cap", "File_axon_5"): "from tau",
    ("cap", "190619B_0003"): "from tau (10 %) and rin (5 %)",
    ("apthr", "99111002"): ONSET,
    ("apamp", "99111002"): ONSET,
    ("aphw", "99111002"): ONSET,
    ("ahpamp", "99111002"): ONSET,
    ("adratio", "99111002"): ONSET,
    ("isi_adapt", "99111002"): ONSET,
    ("aphw", "190619B_0003"): PLATEAU,
    ("maxfreq", "190619B_0003"): PLATEAU,
    ("f_i_curve_slope", "190619B_0003"): PLATEAU,
    ("latency", "190619B_0003"): PLATEAU,
    ("isi_adapt", "190619B_0003"): PLATEAU,
    ("ahpamp", "190619B_0003"): (
        "definition: Allen's fast trough (5 ms after the peak) vs "
        "eFEL's minimum between spikes (this cell's AHP is slow)"
    ),
    ("aphw", "2019_07_24_0055_fsi"): (
        "definition: eFEL's spike_half_width is half of the "
        "AHP-minimum-to-peak height, Allen's half of peak - trough"
    ),
    ("latency", "2019_07_24_0055_fsi"): (
        "definition: eFEL's time_to_first_spike counts a "
        "spontaneous spike before the step (-0.12 s)"
    ),
}
# eFEL gives no value where ours has one
EFEL_NAN = {
    ("tau", "99111002"),
    ("cap", "99111002"),
    ("apamp", "190619B_0003"),
    ("adratio", "190619B_0003"),
}


@pytest.fixture(scope="module")
def both(raw_dir):
    from tests.efel_reference import efel_features

    settings = FeaturesSettings(n_jobs=1)
    ours, theirs = {}, {}
    for path in list_recordings([raw_dir / "recordings"]):
        rec = read_recording(path)
        row = row_of(rec, settings)
        ours[rec.cell_id] = {f: row[f] for f in EXTRACTED}
        theirs[rec.cell_id] = efel_features(rec, row, settings)
    ours = pd.DataFrame(ours).T
    return ours, pd.DataFrame(theirs).T.loc[ours.index, ours.columns]


def test_every_feature_agrees_with_efel_or_the_cause_is_documented(both):
    ours, theirs = both
    agree, disagree, missing = [], [], []
    for feature in EXTRACTED:
        tol, kind = TOLERANCE[feature]
        for cell in ours.index:
            a, b = ours.loc[cell, feature], theirs.loc[cell, feature]
            if np.isnan(a) and np.isnan(b):
                continue
            if np.isnan(a) or np.isnan(b):
                missing.append((feature, cell))
                continue
            diff = abs(a - b) if kind == "abs" else abs(a - b) / abs(a)
            (agree if diff <= tol else disagree).append((feature, cell))
            if (feature, cell) in CAUSES:  # documented as over 10 %: it still is
                assert abs(a - b) / abs(a) > 0.10, (feature, cell, a, b)
    assert sorted(disagree) == sorted(CAUSES)
    assert sorted(missing) == sorted(EFEL_NAN)
    assert len(agree) >= 40  # most of the 67 values both measure agree


def test_rheobase_and_resting_potential_agree_exactly_where_both_have_them(both):
    ours, theirs = both
    rheo = ours["rheo"].dropna()
    assert (theirs.loc[rheo.index, "rheo"] == rheo).all() and len(rheo) == 3
    assert np.allclose(ours["rmp"], theirs["rmp"], atol=1.7)
