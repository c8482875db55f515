"""Honest identity confidence under a lab shift: temper an aligned batch's probabilities.

An alignment (:mod:`ephys2expr.identity.align`) removes a per-feature shift, but a real lab
also moves its cell types unequally, which no per-batch shift can undo: after alignment the
family probabilities of another lab's cells are over-confident, the more so the further the
lab sat from the training cells. The one rule here: a batch whose fitted shift has a
root-mean-square size ``s`` (training-SD units, over the aligned features) has its
probabilities tempered with the temperature

    T = 1 + TEMPER_SLOPE * s,        p_k  ->  p_k ** (1 / T) / sum_j p_j ** (1 / T)

so a batch that was not shifted (``s = 0``, every fold of the training lab: no shift is
significant) keeps its in-domain calibration exactly, and the most probable class of every
cell is unchanged (a power is monotone): accuracy and agreement do not move.

``TEMPER_SLOPE`` was fitted on the training lab only (``benchmarks/bench_temper.py``, never
on another lab's labels): on Scala's held-out animal folds (5, grouped by animal) each
fold was moved like a foreign lab, a shift of N(0, sigma) SD per feature (sigma 0.5, 1,
1.5: the size of the Allen-Scala differences), a log-normal scale of SD 0.2 sigma, and a
per-family shift of N(0, rho sigma) (rho 0, 0.25, 0.5: types moving unequally), aligned by
``auto`` with and without Exc/Inh known, and the NLL-optimal temperature of each aligned
fold's family probabilities was regressed on ``s`` through T = 1 (least squares).
"""

from __future__ import annotations

import numpy as np

from ephys2expr.identity.alignment import Alignment, pattern_rows

TEMPER_SLOPE = 0.33  # benchmarks/bench_temper.py on Scala (docs/transfer.md)


def shift_size(shift: np.ndarray, fitted: bool = True) -> float:
    """Root-mean-square of a fitted per-feature shift (training SD); 0 when nothing was
    fitted."""
    shift = np.asarray(shift, dtype=float)
    return float(np.sqrt(np.mean(shift**2))) if fitted and shift.size else 0.0


def temperature(shift: np.ndarray, fitted: bool = True, slope: float = TEMPER_SLOPE) -> float:
    """The temperature of a batch with the fitted ``shift`` (T = 1 + slope * RMS shift)."""
    return 1.0 + slope * shift_size(shift, fitted)


def cell_temperatures(al: Alignment, X, features, slope: float = TEMPER_SLOPE) -> np.ndarray:
    """Per cell of the batch ``X`` (columns ``features``) the temperature of its own
    alignment: the batch's, or that of the sub-batch (``al.parts``) whose features it
    measured (those cells were moved by that part's shift)."""
    X = np.asarray(X, dtype=float)
    out = np.full(len(X), temperature(al.shift, al.fitted, slope))
    for part in al.parts:
        out[pattern_rows(X, features, al.features, part.features)] = temperature(
            part.shift, part.fitted, slope
        )
    return out


def temper(proba: np.ndarray, T) -> np.ndarray:
    """Probabilities (cells x classes) raised to ``1 / T`` (a scalar or one per cell) and
    renormalised; zeros stay zero, each row's most probable class is unchanged."""
    p = np.asarray(proba, dtype=float)
    inv = 1.0 / np.broadcast_to(np.asarray(T, dtype=float), (len(p),))[:, None]
    with np.errstate(divide="ignore"):
        logp = np.log(p) * inv
    top = logp.max(axis=1, keepdims=True)
    e = np.exp(logp - np.where(np.isfinite(top), top, 0.0))
    tot = e.sum(axis=1, keepdims=True)
    return np.where(tot > 0, e / np.where(tot > 0, tot, 1.0), p)


__all__ = ["TEMPER_SLOPE", "cell_temperatures", "shift_size", "temper", "temperature"]
