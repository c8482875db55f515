"""Which feature sets the train stage fits, and what each achieves (the train report).

:func:`derive_feature_sets` finds the sets in the data: the full set plus every missing
pattern of the per-cell tables that predict applies the store to (``cells.inputs``) with
at least ``cells.min_features`` features, so that every such cell is predicted from exactly
the features it has (reduced-feature models, Saar-Tsechansky & Provost 2007, JMLR 8:
1623-1657) and predict fits nothing. :func:`few_cell_sets` names the patterns of fewer than
``train.min_set_cells`` cells, which train without their own permutation null (cheaper; the
store and the report say so). :func:`set_name` names a set by what it leaves out
(``no_tau_cap``).

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

FULL = "full"  # the name of the set that leaves out nothing


def set_name(features: list[str], kept: list[str]) -> str:
    """``full``, or ``no_`` + the left-out features joined by ``_`` (in ``features`` order)."""
    out = [f for f in features if f not in kept]
    return FULL if not out else "no_" + "_".join(out)


def missing_patterns(tables: dict[str, pd.DataFrame], features: list[str]) -> pd.DataFrame:
    """Cells per missing pattern (over ``features``) in each table.

    A feature a table has no column for is missing in every cell of it.

    Returns
    -------
    DataFrame
        One row per pattern, most cells first (then name): index ``feature_set`` (the
        :func:`set_name` of the features present), ``n_features``, ``features``
        (comma-joined, present ones), one count column per table and ``cells`` (their sum).
    """
    counts: dict[tuple, dict[str, int]] = {}
    for name, table in tables.items():
        present = table.reindex(columns=features).notna().to_numpy()
        rows, n = np.unique(present, axis=0, return_counts=True)
        for row, k in zip(rows, n, strict=True):
            counts.setdefault(tuple(bool(v) for v in row), {})[name] = int(k)
    records = []
    for row, per_table in counts.items():
        kept = [f for f, has in zip(features, row, strict=True) if has]
        per = {t: per_table.get(t, 0) for t in tables}
        records.append(
            {
                "feature_set": set_name(features, kept),
                "n_features": len(kept),
                "features": ",".join(kept),
                **per,
                "cells": sum(per.values()),
            }
        )
    cols = ["feature_set", "n_features", "features", *tables, "cells"]
    out = pd.DataFrame.from_records(records, columns=cols)
    out = out.sort_values(["cells", "feature_set"], ascending=[False, True], kind="stable")
    return out.set_index("feature_set")


def derive_feature_sets(
    features: list[str], patterns: pd.DataFrame, min_features: int
) -> dict[str, list[str]]:
    """The full set, then every pattern of ``patterns`` (:func:`missing_patterns`) with at
    least ``min_features`` features, most cells first: name -> the features it keeps
    (``features`` order)."""
    out = {FULL: list(features)}
    for name, row in patterns.iterrows():
        kept = [f for f in row["features"].split(",") if f]
        if len(kept) >= min_features and name not in out:
            out[str(name)] = kept
    return out


def few_cell_sets(
    sets: dict[str, list[str]], patterns: pd.DataFrame, min_cells: int, requested=()
) -> list[str]:
    """The sets of ``sets`` (name -> features kept) that only a pattern of fewer than
    ``min_cells`` cells needs: not the first (full) set, and none of the names
    ``requested`` (``train.feature_sets``: asked for in full). They are trained without
    their own permutation null."""
    cells = {
        tuple(k for k in row["features"].split(",") if k): int(row["cells"])
        for _, row in patterns.iterrows()
    }
    derived = set(patterns.index) - set(requested)
    return [
        n
        for i, (n, kept) in enumerate(sets.items())
        if i and n in derived and cells.get(tuple(kept), min_cells) < min_cells
    ]


def feature_set_table(results: dict, features: dict[str, list[str]]) -> pd.DataFrame:
    """One row per feature set (in training order).

    Parameters
    ----------
    results : dict of str to TrainResult
        Each set's :class:`~ephys2expr.train.evaluate.TrainResult`: the numbers come from its
        report (:func:`~ephys2expr.train.summary.train_report`), the markers' r2 from its
        per-gene table.
    features : dict of str to list of str
        Each set's features.

    Returns
    -------
    DataFrame
        Indexed by ``feature_set``: ``n_features``, ``left_out`` (features of the first set
        this one lacks), ``genes_beating_all`` (every baseline), ``r2_median``,
        ``frac_r2_gt_0.1``, ``own_null`` (trained with its own permutation null),
        ``genes_q_below_fdr`` (with the null), then ``r2_<marker>`` per marker gene.
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
            "own_null": "null" in report,
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


__all__ = [
    "FULL",
    "derive_feature_sets",
    "feature_set_table",
    "few_cell_sets",
    "missing_patterns",
    "set_name",
]
