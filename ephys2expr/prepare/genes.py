"""The gene filters applied to the training targets, in a fixed order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError


@dataclass
class GeneFilterReport:
    """Genes left after each step of :func:`filter_genes`."""

    n_genes_in: int
    n_after_zero_variance: int
    n_after_min_expression: int
    n_after_top_variable: int

    def as_dict(self) -> dict:
        return {
            "genes_in": self.n_genes_in,
            "genes_after_zero_variance": self.n_after_zero_variance,
            "genes_after_min_expression": self.n_after_min_expression,
            "genes_after_top_variable": self.n_after_top_variable,
        }


def filter_genes(
    targets: pd.DataFrame,
    min_max_log2: float = 0.0,
    top_variable: int = 0,
    where: str = "training targets",
) -> tuple[pd.DataFrame, GeneFilterReport]:
    """Filter a genes x types log2 expression table.

    Steps: drop genes with zero variance across types (nothing to predict); keep genes
    whose largest type mean is >= ``min_max_log2``; keep the ``top_variable`` most
    variable genes (0 = all; ties broken by gene order, so the result is deterministic).
    """
    n_in = len(targets)
    values = targets.to_numpy(dtype=float)
    keep = np.nanvar(values, axis=1) > 0
    n_var = int(keep.sum())
    keep &= np.nanmax(values, axis=1) >= min_max_log2
    n_min = int(keep.sum())
    out = targets[keep]
    if top_variable and top_variable > 0 and len(out) > top_variable:
        var = out.var(axis=1, ddof=0).to_numpy()
        order = np.argsort(-var, kind="stable")[:top_variable]
        out = out.iloc[np.sort(order)]
    if len(out) == 0:
        raise InputError(
            f"{where}: no gene left after filtering (zero variance -> {n_var}, "
            f"min_max_log2={min_max_log2} -> {n_min}, top_variable={top_variable})"
        )
    return out, GeneFilterReport(n_in, n_var, n_min, len(out))
