"""Ephys feature names, units and the two standard lists (the one place they are defined).

The derivation of these features from Allen per-cell columns is in
:mod:`ephys2expr.prepare.derive`.
"""

from __future__ import annotations

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
