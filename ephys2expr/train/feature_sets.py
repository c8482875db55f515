"""What each feature set achieves: the per-set comparison table and its headline numbers.

The train stage fits one model per feature set (``train.feature_sets``, resolved for the
source by :meth:`~ephys2expr.train.settings.TrainSettings.resolve_feature_sets`), each with
its own nested CV, baselines and permutation null. :func:`feature_set_table` puts them side
by side - what a user loses with each left-out feature - for ``plots/train/<source>/
feature_sets.csv``, the report and :func:`~ephys2expr.train.plots.feature_set_figure`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ephys2expr.taxonomy import MARKER_GENES
from ephys2expr.train.baselines import BASELINES


def feature_set_table(per_gene: dict[str, pd.DataFrame], features: dict[str, list[str]],
                      fdr_q: float) -> pd.DataFrame:  # fmt: skip
    """One row per feature set (in training order).

    Parameters
    ----------
    per_gene : dict of str to DataFrame
        Each set's per-gene table (:attr:`~ephys2expr.train.run.TrainResult.per_gene`).
    features : dict of str to list of str
        Each set's features.
    fdr_q : float
        The BH level (``genes_q_below_fdr`` counts q below it; absent without the null).

    Returns
    -------
    DataFrame
        Indexed by ``feature_set``: ``n_features``, ``left_out`` (features of the first set
        this one lacks), ``genes_beating_all`` (every baseline), ``r2_median``,
        ``frac_r2_gt_0.1``, ``genes_q_below_fdr``, then ``r2_<marker>`` per marker gene.
    """
    full = next(iter(features.values()))
    rows = {}
    for name, table in per_gene.items():
        r2 = table["cv_r2"].to_numpy()
        ok = r2[np.isfinite(r2)]
        row = {
            "n_features": len(features[name]),
            "left_out": ",".join(f for f in full if f not in features[name]),
            "genes_beating_all": int(table[[f"beats_{b}" for b in BASELINES]].all(axis=1).sum()),
            "r2_median": float(np.median(ok)) if ok.size else float("nan"),
            "frac_r2_gt_0.1": float((ok > 0.1).mean()) if ok.size else 0.0,
        }
        if "q_value" in table.columns:
            row["genes_q_below_fdr"] = int((table["q_value"].to_numpy() < fdr_q).sum())
        for gene in MARKER_GENES:
            if gene in table.index:
                row[f"r2_{gene}"] = float(table.at[gene, "cv_r2"])
        rows[name] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "feature_set"
    return out.round(6)


def feature_set_headline(table: pd.DataFrame) -> dict:
    """Per set but the first (whose numbers are the model's headline already): the genes
    beating every baseline - what leaving features out costs. The rest is in the report."""
    return {name: int(row["genes_beating_all"]) for name, row in table.iloc[1:].iterrows()}


__all__ = ["feature_set_headline", "feature_set_table"]
