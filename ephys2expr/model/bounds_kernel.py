"""Numba kernel of the interval bounds of a chunk of predicted cells (genes x cells).

What :func:`ephys2expr.model.intervals.chunk_bounds` computes, fused into one pass: the
numpy formula made about fifteen genes x cells temporaries of a chunk (136 MB each for
17,048 genes x 1,000 cells) and was 40 % of predict's time. ``tests/test_intervals.py``
checks the kernel bit for bit against the numpy formula on real predictions.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, parallel=True)
def bounds_kernel(pred, half, far_pos, raw, lo, hi, lower, upper):
    """Fill ``lower``/``upper`` (genes x cells, float64) from ``pred`` (genes x cells),
    ``half`` (the half-widths, genes x cells) and the extrapolated predictions ``raw``
    (genes x far cells; ``far_pos[c]`` is cell ``c``'s column there, -1 for a cell in
    range). Same operations in the same order as the numpy formula (no fastmath)."""
    n_genes, n_cells = pred.shape
    for g in numba.prange(n_genes):
        for c in range(n_cells):
            p = np.float64(pred[g, c])
            low = p
            high = p
            j = far_pos[c]
            if j >= 0:
                low = np.minimum(p, raw[g, j])
                high = np.maximum(p, raw[g, j])
            h = half[g, c]
            a = np.minimum(np.maximum(low - h, lo), hi)
            b = np.minimum(np.maximum(high + h, lo), hi)
            if j >= 0:  # a far cell's interval cut at 0 (or the ceiling) keeps its width
                width = (high - low) + 2 * h
                a = np.maximum(np.minimum(a, b - width), lo)
                b = np.minimum(np.maximum(b, a + width), hi)
            lower[g, c] = a
            upper[g, c] = b
