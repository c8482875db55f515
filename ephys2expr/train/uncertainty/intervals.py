"""Prediction intervals in training: calibrated on out-of-fold residuals, coverage measured.

For each gene chunk (:func:`chunk_intervals`, inside
:func:`~ephys2expr.train.gene_chunk.train_gene_chunk`) and each interval method of
:data:`~ephys2expr.model.intervals.METHODS`:

* **coverage, honestly** - for each outer fold ``k``, the difficulty model and the
  quantiles are fitted on the other folds' out-of-fold residuals only, and the intervals of
  fold ``k``'s rows (held-out animals; a left-out type with LOO) are checked against their
  measured values, at the levels :data:`CV_LEVELS` (the calibration plot);
* **the store's intervals** - the same fit on every row's out-of-fold residual
  (:meth:`~ephys2expr.model.intervals.GeneIntervals.calibrate`).

:func:`gather_intervals` joins the chunks, chooses per feature set the method with the
narrowest mean width among those covering at least ``SELECT_LEVEL - SELECT_TOLERANCE`` in
CV (plain when none does), and summarises coverage overall and per group (RNA family for
per-cell data, broad type for type means).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ephys2expr.model.intervals import (
    LEVEL,
    METHODS,
    GeneIntervals,
    clipped_bounds,
    fit_scale,
    scale_values,
)
from ephys2expr.model.intervals import conformal_quantile as cq
from ephys2expr.model.ood import NEIGHBORS
from ephys2expr.model.store import EXPRESSION_RANGE
from ephys2expr.scaling import scaler_stats
from ephys2expr.train.uncertainty.ood import oof_neighbors

CV_LEVELS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5 .. 0.95
SELECT_LEVEL = LEVEL  # predict's default level (model.intervals.LEVEL)
SELECT_TOLERANCE = 0.01
INTERVAL_NEIGHBORS = NEIGHBORS  # k of the knn difficulty: the OOD score's (model.ood)
# a value this close to a bound counts as inside: a measured value that equals its bound in
# exact arithmetic (tied residuals of a constant model) is inside on every machine, not
# inside or outside by the last bits of the kernels (tests/test_same_everywhere.py)
TIE = 1e-9
MIN_GROUP_ROWS = 30  # groups (families) with fewer rows are not reported on their own


def oof_distances(X: np.ndarray, folds, k: int = INTERVAL_NEIGHBORS) -> np.ndarray:
    """Each row's mean distance to its ``k`` nearest rows of its outer training fold (the
    fold's own standardisation): how far it was from what its out-of-fold model knew."""
    return oof_neighbors(X, folds, k, "distance")


def chunk_intervals(X, Y, oof, folds, distance, group_codes, n_groups: int) -> dict:
    """Per method: the CV coverage counts and widths of one gene chunk, and its store table.

    Parameters
    ----------
    X : ndarray, shape (n_rows, n_features)
    Y, oof : ndarray, shape (n_rows, n_genes)
        Measured and out-of-fold predicted (clipped) log2 expression.
    folds : list of (train, test) index arrays (the outer CV)
    distance : ndarray, shape (n_rows,)
        :func:`oof_distances`.
    group_codes : ndarray of int, shape (n_rows,)
        Each row's group (family) as a code ``0 .. n_groups - 1``.

    Returns
    -------
    dict of method -> dict
        ``covered`` (len(CV_LEVELS), n_groups) counts of covered values, ``row_covered``
        (n_rows,) each held-out row's covered genes at SELECT_LEVEL (coverage against the
        OOD score: :func:`~ephys2expr.train.uncertainty.ood.cv_ood`), ``width`` (n_genes,)
        median width
        of the held-out rows at SELECT_LEVEL, ``width_sum`` (float) their sum, ``table`` the
        store's interval table (genes by position).
    """
    abs_res = np.abs(Y - oof)
    mean, scale = scaler_stats(X)
    sel = CV_LEVELS.index(SELECT_LEVEL)
    out = {}
    for method in METHODS:
        covered = np.zeros((len(CV_LEVELS), n_groups))
        row_covered = np.zeros(len(Y))
        widths = np.empty_like(Y)
        for tr, te in folds:
            m, s = scaler_stats(X[tr])
            params = fit_scale(method, abs_res[tr], X[tr], distance[tr], m, s)
            q = cq(abs_res[tr] / scale_values(params, X[tr], distance[tr]), CV_LEVELS)
            sigma = scale_values(params, X[te], distance[te])
            for i in range(len(CV_LEVELS)):
                with np.errstate(invalid="ignore"):
                    half = np.nan_to_num(sigma * q[i], nan=np.inf)
                lower, upper = clipped_bounds(oof[te], oof[te], half, EXPRESSION_RANGE)
                ok = (Y[te] >= lower - TIE) & (Y[te] <= upper + TIE)
                covered[i] += np.bincount(group_codes[te], ok.sum(axis=1), minlength=n_groups)
                if i == sel:
                    widths[te] = upper - lower
                    row_covered[te] = ok.sum(axis=1)
        fitted = GeneIntervals.calibrate(
            method,
            abs_res,
            X,
            distance,
            mean,
            scale,
            pd.RangeIndex(Y.shape[1]),
            [str(j) for j in range(X.shape[1])],
            INTERVAL_NEIGHBORS,
        )
        out[method] = {
            "covered": covered,
            "row_covered": row_covered,
            "width": np.median(widths, axis=0),
            "width_sum": float(widths.sum()),
            "table": fitted.table,
        }
    return out


def _coverage(covered: np.ndarray, n_values: np.ndarray) -> np.ndarray:
    """Coverage per level overall (column 0) and per group (the rest)."""
    total = covered.sum(axis=1, keepdims=True) / n_values.sum()
    return np.column_stack([total, covered / np.maximum(n_values, 1)])


def gather_intervals(
    parts: list[dict],
    genes: pd.Index,
    features: list,
    y_sd,
    groups,
    group_names: list,
    what: str,
) -> tuple[GeneIntervals, dict, np.ndarray]:
    """The chosen method's :class:`GeneIntervals` for a feature set, its report, and each
    row's CV coverage under it.

    ``parts``: :func:`chunk_intervals` of consecutive gene chunks; ``groups``: rows per
    group (counts, in code order) with names ``group_names``; ``what``: what a group is.
    The coverage per row (n_rows,) is the share of its genes whose held-out value fell inside
    the chosen method's interval at :data:`SELECT_LEVEL` (calibrated without the row's fold).
    """
    n_genes = len(genes)
    n_values = np.asarray(groups, dtype=float) * n_genes
    sd = np.asarray(y_sd, dtype=float)
    summary = {}
    for method in METHODS:
        covered = sum(p[method]["covered"] for p in parts)
        width = np.concatenate([p[method]["width"] for p in parts])
        cov = _coverage(covered, n_values)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(sd > 0, width / sd, np.nan)
        summary[method] = {
            "coverage": cov,
            "width": width,
            "mean_width": sum(p[method]["width_sum"] for p in parts) / n_values.sum(),
            "median_width_over_sd": float(np.nanmedian(rel)) if np.isfinite(rel).any() else None,
        }
    sel = CV_LEVELS.index(SELECT_LEVEL)
    ok = [m for m in METHODS if summary[m]["coverage"][sel, 0] >= SELECT_LEVEL - SELECT_TOLERANCE]
    chosen = min(ok, key=lambda m: summary[m]["mean_width"]) if ok else "plain"
    table = pd.concat([p[chosen]["table"] for p in parts], ignore_index=True)
    table.index = genes.copy()
    table.columns = [_feature_column(c, features) for c in table.columns]
    fitted = GeneIntervals(
        chosen, table, list(features), INTERVAL_NEIGHBORS if chosen == "knn" else 0
    )
    big = [i for i, n in enumerate(groups) if n >= MIN_GROUP_ROWS]
    # type means (20 rows): no group has 30, so every group is shown, however small
    min_rows = MIN_GROUP_ROWS if big else 1
    big = big or list(range(len(groups)))
    report = {
        "method": chosen,
        "level": SELECT_LEVEL,
        "group_min_rows": min_rows,
        f"rows_by_{what}": {group_names[i]: int(groups[i]) for i in big},
        "methods": {},
    }
    for method, s in summary.items():
        cov = s["coverage"]
        curve = {f"{lv:g}": round(float(cov[j, 0]), 4) for j, lv in enumerate(CV_LEVELS)}
        report["methods"][method] = {
            "coverage": round(float(cov[sel, 0]), 4),
            f"coverage_by_{what}": {group_names[i]: round(float(cov[sel, i + 1]), 4) for i in big},
            "min_coverage_in_a_group": round(float(min(cov[sel, i + 1] for i in big)), 4)
            if big
            else None,
            "calibration": curve,
            "mean_width": round(float(s["mean_width"]), 4),
            "median_width_over_gene_sd": _round(s["median_width_over_sd"]),
        }
    plain = summary["plain"]["width"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(plain > 0, summary[chosen]["width"] / plain, np.nan)
    report["median_width_ratio_to_plain"] = _round(
        float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else None
    )
    row_coverage = sum(p[chosen]["row_covered"] for p in parts) / max(n_genes, 1)
    return fitted, report, row_coverage


def calibration_figure(report: dict, rows: str = "cells"):
    """Nominal vs observed coverage in CV per method (left) and per group at
    :data:`SELECT_LEVEL` (right), from ``report["intervals"]`` of the train report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    ax = axes[0]
    ax.plot([0.45, 1.0], [0.45, 1.0], color="k", lw=0.8, ls="--", label="nominal")
    for method, entry in report["methods"].items():
        levels = [float(k) for k in entry["calibration"]]
        chosen = " (chosen)" if method == report["method"] else ""
        ax.plot(
            levels,
            list(entry["calibration"].values()),
            marker="o",
            ms=3,
            label=f"{method}{chosen}: mean width {entry['mean_width']:.2f}",
        )
    ax.set_xlabel("nominal coverage (interval level)")
    ax.set_ylabel(f"observed coverage of held-out {rows}")
    ax.legend(fontsize=8)
    ax.set_title("calibration (outer CV, calibrated without the held-out fold)", fontsize=9)
    ax = axes[1]
    key = next((k for k in report["methods"]["plain"] if k.startswith("coverage_by_")), None)
    groups = list(report["methods"]["plain"].get(key) or {})
    width = 0.8 / len(report["methods"])
    for i, (method, entry) in enumerate(report["methods"].items()):
        values = [entry[key][g] for g in groups]
        ax.bar([j + i * width for j in range(len(groups))], values, width, label=method)
    ax.axhline(SELECT_LEVEL, color="k", lw=0.8, ls="--")
    ax.set_ylim(0.7, 1.0)
    ax.set_ylabel(f"coverage at {SELECT_LEVEL:g}")
    what = key.removeprefix("coverage_by_") if key else "group"
    rows_by = report.get(f"rows_by_{what}", {})
    ax.set_xticks(
        [j + 0.4 - width / 2 for j in range(len(groups))],
        [f"{g}\n({rows_by.get(g, '?')})" for g in groups],
        fontsize=8,
    )
    ax.set_title(
        f"by {what} (rows in parentheses; >= {report.get('group_min_rows', 1)})", fontsize=9
    )
    if groups:
        ax.legend(fontsize=8)
    fig.suptitle("Prediction intervals: coverage in cross-validation", fontsize=11)
    fig.tight_layout()
    return fig


def _feature_column(col: str, features: list) -> str:
    """``scale_<j>`` (a feature by position, as chunks name them) -> ``scale_<feature>``."""
    if col.startswith("scale_") and col[6:].isdigit():
        return f"scale_{features[int(col[6:])]}"
    return col


def _round(x):
    return None if x is None else round(float(x), 4)


__all__ = [
    "CV_LEVELS",
    "INTERVAL_NEIGHBORS",
    "MIN_GROUP_ROWS",
    "SELECT_LEVEL",
    "calibration_figure",
    "chunk_intervals",
    "gather_intervals",
    "oof_distances",
]


def recalibrate(X, Y, oof, folds, interval_rows: tuple, genes: pd.Index, features: list, y_sd):
    """:func:`gather_intervals` of another model's out-of-fold predictions ``oof`` (rows x
    genes) on the rows the linear model's intervals were calibrated on (``interval_rows``:
    :attr:`~ephys2expr.train.evaluate.TrainResult.interval_rows`): the intervals of the model
    that predicts (``train.model: mixture | best``), not of the Lasso."""
    distance, group_codes, groups = interval_rows
    part = chunk_intervals(X, Y, oof, folds, distance, group_codes, len(groups[1]))
    return gather_intervals([part], genes, features, y_sd, *groups)
