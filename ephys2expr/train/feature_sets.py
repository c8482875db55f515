"""What each feature set achieves: the per-set comparison table (in the train report).

The train stage fits one model per feature set (``train.feature_sets``, resolved for the
source by :meth:`~ephys2expr.train.settings.TrainSettings.resolve_feature_sets`), each with
its own nested CV, baselines and permutation null. :func:`feature_set_table` puts them side
by side - what a user loses with each left-out feature - for ``plots/train/<source>/
feature_sets.csv``, the report and :func:`~ephys2expr.train.plots.feature_set_figure`.
"""

from __future__ import annotations

import pandas as pd

from ephys2expr.taxonomy import MARKER_GENES


def feature_set_table(results: dict, features: dict[str, list[str]]) -> pd.DataFrame:
    """One row per feature set (in training order).

    Parameters
    ----------
    results : dict of str to TrainResult
        Each set's :class:`~ephys2expr.train.chunks.TrainResult`: the numbers come from its
        report (:func:`~ephys2expr.train.summary.train_report`), the markers' r2 from its
        per-gene table.
    features : dict of str to list of str
        Each set's features.

    Returns
    -------
    DataFrame
        Indexed by ``feature_set``: ``n_features``, ``left_out`` (features of the first set
        this one lacks), ``genes_beating_all`` (every baseline), ``r2_median``,
        ``frac_r2_gt_0.1``, ``genes_q_below_fdr`` (with the null), then ``r2_<marker>`` per
        marker gene.
    """
    full = next(iter(features.values()))
    rows = {}
    for name, result in results.items():
        report, per_gene = result.report, result.per_gene
        row = {
            "n_features": len(features[name]),
            "left_out": ",".join(f for f in full if f not in features[name]),
            "genes_beating_all": report["genes_beating_all_baselines"],
            "r2_median": report["model"]["r2_median"],
            "frac_r2_gt_0.1": report["model"]["frac_r2_gt_0.1"],
        }
        if "null" in report:
            row["genes_q_below_fdr"] = report["null"]["genes_q_below_fdr"]
        for gene in MARKER_GENES:
            if gene in per_gene.index:
                row[f"r2_{gene}"] = float(per_gene.at[gene, "cv_r2"])
        rows[name] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "feature_set"
    return out.round(6)


__all__ = ["feature_set_table"]
