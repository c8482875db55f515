"""One batch's fitted alignment: the shift and scale per feature, the class composition, and
the sub-batches of cells that measured fewer features (:class:`Alignment`).

Fitted by :func:`ephys2expr.identity.align.fit_alignment`; applied to the batch's raw
features by :meth:`Alignment.apply`; reported (predict's report, the h5ad uns, validate's
transfer table) by :meth:`Alignment.report` and :meth:`Alignment.largest_text`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ephys2expr.identity.gaussians import ClassGaussians


@dataclass
class Alignment:
    """One batch's fitted alignment (identity when ``fitted`` is False).

    ``shift`` and ``scale`` are per feature of ``features`` in training-SD units of the
    transformed feature: aligned = (standardised - shift) / scale, back in raw units.
    ``composition_test``: ``auto``'s test without a known class; ``responsibilities``: the
    fitted cells' class responsibilities (pooled methods only; not reported). ``parts``:
    alignments of the sub-batches of cells that measured only some of ``features`` (each
    with its own ``features``, ``reason`` naming what its cells lack); a part moves exactly
    the cells whose measured features among the batch's aligned ones are its ``features``.
    """

    method: str
    n_cells: int
    fitted: bool
    reason: str = ""
    features: list = field(default_factory=list)
    shift: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    composition: dict = field(default_factory=dict)
    n_iter: int = 0
    converged: bool = True
    composition_test: dict = field(default_factory=dict)
    responsibilities: np.ndarray | None = field(default=None, repr=False)
    parts: list = field(default_factory=list)

    def apply(self, X, features, model: ClassGaussians) -> np.ndarray:
        """``X`` (cells x ``features``, raw units, NaN kept) with this batch's alignment (and
        its parts' on their cells)."""
        X0 = np.array(X, dtype=float, copy=True)
        out = self._move(X0.copy(), features, model)
        for part in self.parts:
            rows = pattern_rows(X0, features, self.features, part.features)
            out[rows] = part._move(X0[rows], features, model)
        return out

    def _move(self, X: np.ndarray, features, model: ClassGaussians) -> np.ndarray:
        moved = np.flatnonzero((self.shift != 0) | (self.scale != 1)) if self.fitted else []
        if not len(moved):  # features without a shift keep their exact values
            return X
        names = [self.features[i] for i in moved]
        cols = [list(features).index(f) for f in names]
        sub = model.subset([model.features.index(f) for f in names])
        S = sub.standardise(X[:, cols])
        X[:, cols] = sub.raw((S - self.shift[moved]) / self.scale[moved])
        return X

    def largest(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` largest absolute shifts, (feature, shift), largest first."""
        order = np.argsort(-np.abs(self.shift), kind="stable")[:n]
        return [(self.features[i], float(self.shift[i])) for i in order]

    def largest_text(self, n: int = 3) -> str:
        """The ``n`` largest shifts as one readable string, ``"rmp -1.26, apamp -1.25"``
        (``""`` when nothing was fitted): the one format of the log line, the report, the
        h5ad uns and validate's transfer table."""
        return ", ".join(f"{f} {s:+.2f}" for f, s in self.largest(n)) if self.fitted else ""

    def report(self) -> dict:
        """JSON-ready summary: method, cells, shift and scale per feature, composition, the
        largest shifts (:meth:`largest_text`) and the parts' own reports (``parts``, keyed by
        their reason, ``cells without tau, cap``)."""
        out = {
            "method": self.method,
            "n_cells": int(self.n_cells),
            "fitted": bool(self.fitted),
            "reason": self.reason,
            "largest_shifts": self.largest_text(),
            "shift_sd": {
                f: round(float(s), 4) for f, s in zip(self.features, self.shift, strict=True)
            },
            "scale": {
                f: round(float(s), 4) for f, s in zip(self.features, self.scale, strict=True)
            },
            "composition": {k: round(float(v), 4) for k, v in self.composition.items()},
            "n_iter": int(self.n_iter),
            "converged": bool(self.converged),
            "composition_test": dict(self.composition_test),
        }
        if self.parts:
            out["parts"] = {p.reason: p.report() for p in self.parts}  # uns holds no lists of dicts
        return out


def pattern_rows(X: np.ndarray, features, aligned, measured) -> np.ndarray:
    """Cells of ``X`` (columns ``features``) whose finite values among the features
    ``aligned`` are exactly the features ``measured`` (bool per cell)."""
    cols = [list(features).index(f) for f in aligned]
    want = np.isin(list(aligned), list(measured))
    return (np.isfinite(X[:, cols]) == want).all(axis=1)


__all__ = ["Alignment", "pattern_rows"]
