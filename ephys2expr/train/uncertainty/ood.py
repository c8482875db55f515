"""What the out-of-distribution flag costs in cross-validation.

Each held-out row (a cell of held-out animals, or a left-out cell type) is scored against
its own outer training fold exactly as predict scores a new cell against the store's
training rows (:class:`~ephys2expr.model.ood.NeighborScore`: features standardised by the
fold's training rows, ``k`` nearest, percentile among the fold's leave-one-out distances),
and its out-of-fold absolute error (median over genes) and its prediction intervals' coverage
(share of its genes inside the interval at 0.9, calibrated without its fold) are set against
that score: what the flag costs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ephys2expr.model.ood import (
    NEIGHBORS,
    PERCENTILE,
    NeighborScore,
    error_by_score,
    neighbors_k,
    score_bins,
)
from ephys2expr.scaling import scaler_stats, standardise

# k of the plot and the bins, and the ``>99`` bin: predict's defaults, from their owner
CV_NEIGHBORS = NEIGHBORS
CV_PERCENTILE = PERCENTILE


def oof_neighbors(X: np.ndarray, folds, k: int, what: str = "score") -> np.ndarray:
    """Each row's kNN ``score`` (OOD percentile) or mean ``distance`` against its outer
    training fold, standardised by that fold's own scaler as a store's: the one fold loop of
    the OOD score in CV (:func:`cv_ood`) and of the intervals' knn difficulty."""
    out = np.full(len(X), np.nan)
    for tr, te in folds:
        mean, scale = scaler_stats(X[tr])  # the fold's own scaler, as a store's
        scorer = NeighborScore(k).fit(standardise(X[tr], mean, scale))
        out[te] = getattr(scorer, what)(standardise(X[te], mean, scale))
    return out


def fold_scores(X: np.ndarray, folds, k: int) -> np.ndarray:
    """OOD score of every row against its outer training fold (each row is held out once)."""
    return oof_neighbors(X, folds, k, "score")


def cv_ood(features: pd.DataFrame, oof: pd.DataFrame, targets: pd.DataFrame, folds, coverage=None):
    """Per training row its CV OOD score and out-of-fold error, and the report section.

    Parameters
    ----------
    features : DataFrame
        Rows x features of the full set, original units.
    oof, targets : DataFrame
        Genes x rows: out-of-fold predictions and measured log2 expression (the genes of
        ``oof``; all of them unless the targets were streamed).
    folds : list of (train, test) index arrays
        The outer CV folds the out-of-fold predictions came from.
    coverage : ndarray, shape (n_rows,), optional
        Each row's CV interval coverage
        (:attr:`~ephys2expr.train.evaluate.TrainResult.row_coverage`).

    Returns
    -------
    table : DataFrame
        Indexed like ``features``: ``ood_score``, ``bin``, ``abs_error`` (median over genes)
        and, given ``coverage``, ``interval_coverage``.
    report : dict
        Cells, median error and (given ``coverage``) interval coverage per score bin,
        Spearman's rho (score vs error) for ``k`` = 1 .. the ``k`` used, the share above
        :data:`CV_PERCENTILE`.
    """
    X = features.to_numpy(dtype=float)
    measured = targets.loc[oof.index, list(features.index)].to_numpy(dtype=float)
    error = np.median(np.abs(oof[list(features.index)].to_numpy(dtype=float) - measured), axis=0)
    score = fold_scores(X, folds, CV_NEIGHBORS)
    table = pd.DataFrame(
        {"ood_score": score, "bin": score_bins(score), "abs_error": error}, index=features.index
    )
    used = neighbors_k(CV_NEIGHBORS, min(len(tr) for tr, _ in folds)) if folds else 0
    # by the k used (a small training set caps it: neighbors_k)
    rho_by_k = {
        str(k): error_by_score(fold_scores(X, folds, k), error)["spearman_rho"]
        for k in range(1, max(used, 1) + 1)
    }
    report = {
        "what": (
            "each held-out row scored against its outer training fold (predict's ood_score), "
            "against its out-of-fold absolute error (median over genes, log2 units)"
        ),
        "n_genes": int(len(oof)),
        "k": int(used),  # in the smallest training fold
        "frac_ood": round(float(np.mean(score > CV_PERCENTILE)), 4),
        **error_by_score(score, error),
        "spearman_rho_by_k": rho_by_k,
    }
    if coverage is not None:
        table["interval_coverage"] = np.asarray(coverage, dtype=float)
        for label, entry in report["bins"].items():
            sel = (table["bin"] == label).to_numpy()
            cov = table.loc[sel, "interval_coverage"]
            # rows weigh equally (each has every gene): the mean of their shares
            entry["interval_coverage"] = round(float(cov.mean()), 4) if sel.any() else None
    return table, report


def ood_error_figure(table: pd.DataFrame, rows: str = "cells"):
    """Out-of-fold absolute error per row against its OOD score: points and a box per bin,
    with the intervals' CV coverage per bin (given ``interval_coverage`` in ``table``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["0-50", "50-90", "90-99", ">99"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    axes[0].scatter(table["ood_score"], table["abs_error"], s=8, alpha=0.5, color="tab:blue")
    axes[0].axvline(CV_PERCENTILE, color="k", ls="--", lw=1, label="ood threshold (99)")
    axes[0].set_xlabel("OOD score against the training fold (percentile)")
    axes[0].set_ylabel("out-of-fold |error|, median over genes (log2)")
    axes[0].legend(fontsize=8)
    data = [table.loc[table["bin"] == b, "abs_error"].to_numpy() for b in labels]
    shown = [i for i, d in enumerate(data) if len(d)]
    axes[1].boxplot([data[i] for i in shown], positions=shown, widths=0.6)
    ticks = [f"{b}\n(n={len(d)})" for b, d in zip(labels, data, strict=True)]
    axes[1].set_xticks(range(len(labels)), ticks)
    axes[1].set_xlabel("OOD score bin")
    axes[1].set_title("error per score bin", fontsize=9)
    if "interval_coverage" in table.columns:
        cov = [table.loc[table["bin"] == b, "interval_coverage"].mean() for b in labels]
        twin = axes[1].twinx()
        twin.plot(
            shown,
            [cov[i] for i in shown],
            color="tab:red",
            marker="o",
            label="90 % interval coverage",
        )
        twin.axhline(0.9, color="tab:red", ls=":", lw=1)
        twin.set_ylim(min(0.5, *(cov[i] - 0.05 for i in shown)), 1.0)
        twin.set_ylabel("interval coverage (CV)", color="tab:red")
        twin.tick_params(axis="y", colors="tab:red")
        twin.legend(fontsize=8, loc="lower left")
        axes[1].set_title("error and 90 % interval coverage per score bin", fontsize=9)
    fig.suptitle(f"What the OOD flag costs in CV: held-out {rows}", fontsize=11)
    fig.tight_layout()
    return fig


__all__ = [
    "CV_NEIGHBORS",
    "CV_PERCENTILE",
    "cv_ood",
    "fold_scores",
    "ood_error_figure",
    "oof_neighbors",
]
