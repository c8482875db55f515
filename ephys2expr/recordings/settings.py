"""The ``features:`` section of ``params.yaml``: how features are extracted from recordings.

Each setting is defined once here (name, default, check). The defaults are the Allen Cell
Types (ipfx) values where ipfx has one (docs/features-from-recordings.md names each).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ephys2expr.errors import InputError
from ephys2expr.settings import Settings, setting


@dataclass
class FeaturesSettings(Settings):
    """How ``stages/features.py`` finds the steps, detects spikes and measures each feature.

    Build it with ``FeaturesSettings.from_params("params.yaml", overrides)``.
    """

    SECTION: ClassVar[str] = "features"

    filter_khz: float = setting(
        10.0,
        "low-pass (4-pole Bessel, zero phase) before dV/dt: this cutoff (ipfx's 10 kHz) or "
        "filter_fraction of the sampling rate, whichever is lower",
    )
    filter_fraction: float = setting(
        0.4, "the cutoff is at most this fraction of the sampling rate (below Nyquist, 0.5)"
    )
    dvdt_threshold: float = setting(
        20.0, "spike detection: dV/dt crosses this (mV/ms; ipfx dv_cutoff)"
    )
    threshold_fraction: float = setting(
        0.05, "AP threshold: where dV/dt falls below this fraction of the spike's max upstroke"
    )
    min_height: float = setting(2.0, "a spike rises at least this far above threshold (mV)")
    min_peak: float = setting(-30.0, "a spike peaks above this (mV)")
    fast_trough_ms: float = setting(5.0, "fast trough: minimum within this time after the peak")
    min_spike_khz: float = setting(
        5.0, "below this sampling rate no spike feature is measured (an AP lasts ~1 ms)"
    )
    min_step_ms: float = setting(100.0, "a current step shorter than this is not a long square")
    baseline_ms: float = setting(100.0, "baseline: this window just before the step onset")
    rin_min_pa: float = setting(
        -100.0,
        "input resistance and tau from hyperpolarising steps down to this amplitude (pA; "
        "ipfx subthresh_min_amp); none there: the smallest hyperpolarising step",
    )
    tau_fraction: float = setting(
        0.1, "tau fit: from where the deflection reaches this fraction to its peak (ipfx)"
    )
    sag_target_mv: float = setting(
        -100.0, "sag on the subthreshold step whose peak deflection is closest to this (mV)"
    )
    sag_peak_ms: float = setting(5.0, "sag: the peak voltage is averaged over this window")
    sag_steady_ms: float = setting(
        30.0, "sag: the steady state (end of step) and the baseline are averaged over this"
    )
    block_fraction: float = setting(
        0.3,
        "depolarisation block: spiking stops this fraction of the step before its end while "
        "the membrane stays above the sweep's median spike threshold",
    )
    junction_potential_mv: float = setting(
        0.0,
        "liquid junction potential subtracted from every voltage (mV; 0 = uncorrected, as "
        "the Allen and Scala training features)",
    )
    n_jobs: int = setting(2, "files processed in parallel (processes; 1 = in this process)")

    def check(self) -> None:
        positive = (
            "filter_khz",
            "dvdt_threshold",
            "min_height",
            "fast_trough_ms",
            "min_spike_khz",
            "min_step_ms",
            "baseline_ms",
            "sag_peak_ms",
            "sag_steady_ms",
        )
        for key in positive:
            if getattr(self, key) <= 0:
                raise InputError(f"{self.where(key)}: {getattr(self, key)} is not > 0")
        for key in ("filter_fraction", "threshold_fraction", "tau_fraction", "block_fraction"):
            value = getattr(self, key)
            if not 0 < value < (0.5 if key == "filter_fraction" else 1):
                bound = "0.5 (Nyquist)" if key == "filter_fraction" else "1"
                raise InputError(f"{self.where(key)}: {value} is not between 0 and {bound}")
        if self.rin_min_pa >= 0:
            raise InputError(f"{self.where('rin_min_pa')}: {self.rin_min_pa} is not < 0 pA")
        if self.n_jobs < 1:
            raise InputError(f"{self.where('n_jobs')}: {self.n_jobs} is not >= 1")

    def cutoff_hz(self, fs: float) -> float:
        """The low-pass cutoff for a trace sampled at ``fs`` Hz (follows the sampling rate)."""
        return min(self.filter_khz * 1000.0, self.filter_fraction * fs)


__all__ = ["FeaturesSettings"]
