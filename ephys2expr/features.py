"""Ephys feature names, units and the two standard lists (the one place they are defined).

:data:`PLAUSIBLE_RANGE` holds the physically possible values of each feature (the predict
stage rejects values outside it). The derivation of these features from Allen per-cell
columns is in :mod:`ephys2expr.readers.derive`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# The 11 features of the training table (Pavlidis lab names), in the table's order.
CORE_FEATURES: list[str] = [
    "rin",
    "rmp",
    "apthr",
    "apamp",
    "aphw",
    "tau",
    "ahpamp",
    "rheo",
    "maxfreq",
    "cap",
    "adratio",
]
# The 4 extra features of the original project's 15 (Allen names kept).
EXTRA_FEATURES: list[str] = ["sag", "f_i_curve_slope", "avg_isi", "latency"]
ALL_FEATURES: list[str] = CORE_FEATURES + EXTRA_FEATURES
# The 7 features Cadwell et al. 2016 measured on its Patch-seq cells (validate's Patch-seq
# comparison uses the model store's feature set of exactly these: train.feature_sets
# "cadwell", whose leave-out list is checked against this one).
CADWELL_FEATURES: list[str] = ["rin", "rmp", "apthr", "apamp", "aphw", "tau", "ahpamp"]

FEATURE_DESCRIPTIONS: dict[str, str] = {
    "rin": "input resistance (MOhm)",
    "rmp": "resting membrane potential (mV)",
    "apthr": "AP threshold (mV)",
    "apamp": "AP amplitude, peak - threshold (mV)",
    "aphw": "AP half-width (ms)",
    "tau": "membrane time constant (ms)",
    "ahpamp": "AHP amplitude, threshold - fast trough (mV)",
    "rheo": "rheobase (pA)",
    "maxfreq": "maximum firing rate (Hz)",
    "cap": "capacitance, 1000 * tau / rin (pF)",
    "adratio": "adaptation ratio",
    "sag": "sag ratio",
    "f_i_curve_slope": "f-I curve slope (Hz/pA)",
    "avg_isi": "mean inter-spike interval (ms)",
    "latency": "latency to first spike (s)",
}


# Each feature's unit as (SI prefix exponent, unit symbol): rin is in 10**6 Ohm (MOhm).
# predict names the unit a table's values are likely in when its median is about 1000x
# off the training's (tau in s: 10**-3 x; rheobase in nA: 10**3 x fewer; cap in F).
# Ratios and composite units (Hz/pA) have none.
FEATURE_UNITS: dict[str, tuple[int, str]] = {
    "rin": (6, "Ohm"),
    "rmp": (-3, "V"),
    "apthr": (-3, "V"),
    "apamp": (-3, "V"),
    "aphw": (-3, "s"),
    "tau": (-3, "s"),
    "ahpamp": (-3, "V"),
    "rheo": (-12, "A"),
    "maxfreq": (0, "Hz"),
    "cap": (-12, "F"),
    "avg_isi": (-3, "s"),
    "latency": (0, "s"),
}

# Other names of the features in tables (lower case, no spaces or separators: matched after
# normalising a column's name the same way): the Allen Cell Types / ipfx names where they
# are the same quantity, and spelled-out names. predict warns when a table has one of them
# and not the feature itself.
FEATURE_ALIASES: dict[str, str] = {
    "inputresistance": "rin",
    "ri": "rin",
    "rinput": "rin",
    "restingpotential": "rmp",
    "restingmembranepotential": "rmp",
    "vrest": "rmp",
    "vbaseline": "rmp",
    "vmrest": "rmp",
    "apthreshold": "apthr",
    "thresholdvlongsquare": "apthr",
    "apamplitude": "apamp",
    "spikeamplitude": "apamp",
    "aphalfwidth": "aphw",
    "halfwidth": "aphw",
    "apwidth": "aphw",
    "spikehalfwidth": "aphw",
    "membranetimeconstant": "tau",
    "timeconstant": "tau",
    "taum": "tau",
    "ahpamplitude": "ahpamp",
    "ahp": "ahpamp",
    "rheobase": "rheo",
    "rheobasei": "rheo",
    "thresholdilongsquare": "rheo",
    "maxfiringrate": "maxfreq",
    "maxrate": "maxfreq",
    "maxfrequency": "maxfreq",
    "capacitance": "cap",
    "membranecapacitance": "cap",
    "cm": "cap",
    "adaptation": "adratio",
    "adaptationratio": "adratio",
    "adaptratio": "adratio",
}


class PlausibleRange(NamedTuple):
    """The values a feature can physically take, in this project's units.

    Wide on purpose: it catches unit mistakes (ohm for MOhm, seconds for ms, volts for mV),
    sign errors and absurd numbers (1e308), not unusual cells; how far a cell lies outside
    the training data is the extrapolation flag's job. ``low_open``: the value must be
    strictly greater than ``low`` (a resistance or a time constant cannot be 0).
    """

    low: float
    high: float
    low_open: bool = False

    def contains(self, values):
        """Boolean array: which ``values`` lie in the range (NaN counts as inside: missing)."""
        values = np.asarray(values, dtype=float)
        above = values > self.low if self.low_open else values >= self.low
        return np.isnan(values) | (above & (values <= self.high))

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"


# Features a paired source may give beyond the project's 15 (distinct names: they are not
# the same quantity as any of the 15, see ephys2expr.readers.scala).
PAIRED_EXTRA_FEATURES: dict[str, str] = {
    "isi_adapt": "ISI adaptation index, 2nd ISI / 1st ISI (median over the first spiking steps)",
}
PAIRED_FEATURE_DESCRIPTIONS: dict[str, str] = {**FEATURE_DESCRIPTIONS, **PAIRED_EXTRA_FEATURES}
PAIRED_FEATURES: list[str] = ALL_FEATURES + list(PAIRED_EXTRA_FEATURES)

# Physically possible values per feature (units as in FEATURE_DESCRIPTIONS). Real data
# lie well inside: Allen v6/v10 cells rin 24-578 MOhm, rmp -85 to -55 mV, tau 3.5-89 ms,
# aphw 0.18-1.9 ms, rheo 10-800 pA, maxfreq 1-337 Hz; Scala 2021 rmp down to -96 mV.
PLAUSIBLE_RANGE: dict[str, PlausibleRange] = {
    "rin": PlausibleRange(0, 10_000, low_open=True),  # MOhm: above 0, below 10 GOhm
    "rmp": PlausibleRange(-150, -10),  # mV: a living neuron rests below -10 mV
    "apthr": PlausibleRange(-100, 20),  # mV
    "apamp": PlausibleRange(0, 200, low_open=True),  # mV
    "aphw": PlausibleRange(0, 20, low_open=True),  # ms
    "tau": PlausibleRange(0, 1_000, low_open=True),  # ms: below a second
    "ahpamp": PlausibleRange(-50, 100),  # mV (threshold - trough; slightly < 0 happens)
    "rheo": PlausibleRange(0, 20_000),  # pA: a depolarising step, below 20 nA
    "maxfreq": PlausibleRange(0, 1_000),  # Hz
    "cap": PlausibleRange(0, 10_000, low_open=True),  # pF
    "adratio": PlausibleRange(0, 1_000),  # ratio of inter-spike intervals
    "sag": PlausibleRange(-1, 10),  # ratio
    "f_i_curve_slope": PlausibleRange(-10, 100),  # Hz/pA
    "avg_isi": PlausibleRange(0, 10_000, low_open=True),  # ms
    "latency": PlausibleRange(0, 10),  # s
}
