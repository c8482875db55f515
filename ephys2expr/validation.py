"""Numbers that say whether to trust predicted expression, against measured expression.

* :func:`type_agreement` - mean predicted profile of each cre-line group vs the mean
  measured profile of its matching transcriptomic group, matched vs unmatched pairs.
* :func:`label_transfer` - Exc/Inh of predicted cells from their measured neighbours.
* :func:`patchseq_agreement` - paired Patch-seq: per gene and per cell correlations of
  predicted vs measured expression, each against a training-mean baseline.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier

log = logging.getLogger("ephys2expr")


def group_means(expr: pd.DataFrame, groups: pd.Series, min_cells: int = 3) -> pd.DataFrame:
    """Mean profile (groups x genes) of the groups with at least ``min_cells`` cells."""
    g = groups.reindex(expr.index)
    counts = g.value_counts()
    keep = counts.index[counts >= min_cells]
    return expr[g.isin(keep).to_numpy()].groupby(g[g.isin(keep)]).mean().sort_index()


def _corr_rows(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pearson r between every row of A and every row of B (NaN for constant rows)."""
    A = A - A.mean(axis=1, keepdims=True)
    B = B - B.mean(axis=1, keepdims=True)
    na = np.linalg.norm(A, axis=1)
    nb = np.linalg.norm(B, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (A @ B.T) / np.outer(na, nb)


def type_agreement(
    pred: pd.DataFrame,
    pred_group: pd.Series,
    meas: pd.DataFrame,
    meas_group: pd.Series,
    min_cells: int = 3,
    centre_genes: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Correlate group-mean predicted and measured profiles over shared genes.

    Parameters
    ----------
    pred, meas : DataFrame
        Cells x genes log2 expression (predicted / measured).
    pred_group, meas_group : Series
        Group of each cell (same vocabulary, e.g. from :func:`ephys2expr.measured.type_group`).
    min_cells : int
        Groups with fewer cells in either source are left out.
    centre_genes : bool
        Subtract each gene's mean over the common groups within each source first, so the
        correlation is about which genes are higher or lower in a group than in the other
        groups, not about which genes are highly expressed in the cortex overall (that alone
        makes every pair correlate at r ~ 0.9).

    Returns
    -------
    corr : DataFrame
        Predicted groups (rows) x measured groups (columns), Pearson r.
    summary : dict
        ``n_genes``, ``groups``, ``matched_r`` (per group), medians of matched and unmatched r,
        and ``top1`` (fraction of predicted groups whose best measured match is their own).
    """
    genes = pred.columns.intersection(meas.columns)
    if len(genes) < 3:
        raise ValueError(f"only {len(genes)} shared genes")
    pm = group_means(pred[genes], pred_group, min_cells)
    mm = group_means(meas[genes], meas_group, min_cells)
    common = pm.index.intersection(mm.index)
    if len(common) < 2:
        raise ValueError(f"fewer than 2 groups in both sources: {list(common)}")
    pm, mm = pm.loc[common], mm.loc[common]
    if centre_genes:
        pm = pm - pm.mean(axis=0)
        mm = mm - mm.mean(axis=0)
    r = _corr_rows(pm.to_numpy(), mm.to_numpy())
    corr = pd.DataFrame(
        r, index=pd.Index(common, name="predicted"), columns=pd.Index(common, name="measured")
    )
    diag = np.diag(r)
    off = r[~np.eye(len(common), dtype=bool)]
    summary = {
        "n_genes": int(len(genes)),
        "groups": [str(g) for g in common],
        "matched_r": {str(g): float(v) for g, v in zip(common, diag, strict=True)},
        "matched_r_median": float(np.nanmedian(diag)),
        "unmatched_r_median": float(np.nanmedian(off)),
        "top1": float(
            np.mean(np.nanargmax(np.nan_to_num(r, nan=-np.inf), axis=1) == np.arange(len(common)))
        ),
    }
    return corr, summary


def label_transfer(
    X: np.ndarray,
    source: np.ndarray,
    labels: np.ndarray,
    query: str = "predicted",
    ref: str = "measured",
    k: int = 15,
) -> dict:
    """Classify each ``query`` cell's label from its ``k`` nearest ``ref`` cells.

    Query cells with a missing label (None/NaN/empty) are not scored. The chance baselines
    are the accuracy of always answering the reference's majority class and a balanced
    accuracy of 1 / n_classes.
    """
    source = np.asarray(source)
    labels = pd.Series(labels, dtype="string").fillna("").to_numpy(dtype=str)
    r = (source == ref) & (labels != "")
    q = (source == query) & (labels != "")
    clf = KNeighborsClassifier(n_neighbors=int(min(k, r.sum()))).fit(X[r], labels[r])
    pred = clf.predict(X[q])
    truth = labels[q]
    classes, counts = np.unique(labels[r], return_counts=True)
    majority = classes[np.argmax(counts)]
    return {
        "n_query": int(q.sum()),
        "n_ref": int(r.sum()),
        "accuracy": float(accuracy_score(truth, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(truth, pred)),
        "chance_accuracy": float(np.mean(truth == majority)),
        "chance_balanced_accuracy": float(1.0 / len(np.unique(truth))),
        "query_class_counts": {
            str(c): int(n) for c, n in zip(*np.unique(truth, return_counts=True), strict=True)
        },
    }


def _pearson_columns(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of A and B (NaN where either is constant)."""
    A = A - A.mean(axis=0)
    B = B - B.mean(axis=0)
    den = np.sqrt((A * A).sum(axis=0) * (B * B).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (A * B).sum(axis=0) / den, np.nan)


def patchseq_agreement(
    predicted: pd.DataFrame,
    measured: pd.DataFrame,
    baseline: pd.Series,
    good_genes: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Compare predicted and measured expression of the same (Patch-seq) cells.

    Parameters
    ----------
    predicted, measured : DataFrame
        Cells x genes, log2, same cells; only their shared genes are used.
    baseline : Series
        The training mean profile per gene (log2), the prediction of a model that ignores
        the ephys.
    good_genes : list of str, optional
        Genes the model predicts well in CV (reported separately).

    Returns
    -------
    per_gene : DataFrame
        ``r`` (across cells, predicted vs measured), ``rmse_model``, ``rmse_baseline``,
        ``beats_baseline`` (rmse_model < rmse_baseline), ``predicted_varies`` (False when the
        model predicts a constant: r is then NaN), ``cv_good``. A constant baseline has no r
        across cells, so per gene the baseline is compared by error.
    per_cell : DataFrame
        ``r_model`` / ``r_baseline`` (across genes), and ``r_dev_model``: r between the
        predicted and measured deviations from the training mean (does the model move
        a gene in the right direction for this cell?).
    summary : dict
    """
    genes = predicted.columns.intersection(measured.columns).intersection(baseline.index)
    cells = predicted.index.intersection(measured.index)
    P = predicted.loc[cells, genes].to_numpy(dtype=float)
    M = measured.loc[cells, genes].to_numpy(dtype=float)
    b = baseline.loc[genes].to_numpy(dtype=float)
    good = set(good_genes or [])
    # A gene whose coefficients are all zero is predicted as a constant: its r is undefined,
    # and floating-point residue (1e-16) must not count as variation or as a win.
    varies = P.std(axis=0) > 1e-9 * (1.0 + np.abs(P).mean(axis=0))
    r_gene = np.where(varies, _pearson_columns(P, M), np.nan)
    rmse_m = np.sqrt(((P - M) ** 2).mean(axis=0))
    rmse_b = np.sqrt(((b[None, :] - M) ** 2).mean(axis=0))
    wins = rmse_m < rmse_b - 1e-9 * (1.0 + rmse_b)
    per_gene = pd.DataFrame(
        {
            "r": r_gene,
            "rmse_model": rmse_m,
            "rmse_baseline": rmse_b,
            "beats_baseline": wins,
            "predicted_varies": varies,
            "cv_good": [g in good for g in genes],
            "measured_mean": M.mean(axis=0),
        },
        index=pd.Index(genes, name="gene"),
    )
    r_model = _pearson_columns(P.T, M.T)
    r_base = _pearson_columns(np.repeat(b[:, None], len(cells), axis=1), M.T)
    r_dev = _pearson_columns((P - b).T, (M - b).T)
    per_cell = pd.DataFrame(
        {"r_model": r_model, "r_baseline": r_base, "r_dev_model": r_dev},
        index=pd.Index(cells, name="cell_id"),
    )

    def gene_block(mask: np.ndarray) -> dict:
        sub = per_gene[mask]
        r = sub["r"].dropna()
        return {
            "n_genes": int(len(sub)),
            "n_genes_predicted_varies": int(sub["predicted_varies"].sum()),
            "n_genes_with_r": int(len(r)),
            "median_r": float(r.median()) if len(r) else None,
            "frac_r_positive": float((r > 0).mean()) if len(r) else None,
            "n_beat_baseline": int(sub["beats_baseline"].sum()),
            "frac_beat_baseline": float(sub["beats_baseline"].mean()) if len(sub) else None,
            "median_rmse_model": float(sub["rmse_model"].median()) if len(sub) else None,
            "median_rmse_baseline": float(sub["rmse_baseline"].median()) if len(sub) else None,
        }

    summary = {
        "n_cells": int(len(cells)),
        "genes_all": gene_block(np.ones(len(per_gene), dtype=bool)),
        "genes_cv_good": gene_block(per_gene["cv_good"].to_numpy()),
        "cells": {
            "median_r_model": float(per_cell["r_model"].median()),
            "median_r_baseline": float(per_cell["r_baseline"].median()),
            "n_cells_model_beats_baseline": int(
                (per_cell["r_model"] > per_cell["r_baseline"]).sum()
            ),
            "median_r_deviation": float(per_cell["r_dev_model"].median()),
        },
    }
    return per_gene, per_cell, summary


def fit_feature_subset_model(
    train_features: pd.DataFrame,
    train_targets: pd.DataFrame,
    features: list[str],
    penalty: str = "lasso",
    alpha="auto",
    l1_ratio: float = 0.5,
    alpha_min: float = 1e-3,
    alpha_max: float = 10.0,
    n_alphas: int = 30,
    inner_folds: int = 5,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
):
    """Fit the per-gene model on a subset of the training features (e.g. Cadwell's 7).

    Same estimator and settings as the ``train`` stage (:class:`ephys2expr.solver.
    MultiGeneElasticNet`), only the feature columns differ.

    Parameters
    ----------
    train_features : DataFrame
        Cell types x features (original units).
    train_targets : DataFrame
        Genes x cell types, log2 expression (columns in ``train_features`` row order).
    features : list of str
        The feature subset, in order.

    Returns
    -------
    model : MultiGeneElasticNet
        Fitted; ``model.predict(X[features])`` gives cells x genes.
    """
    from ephys2expr.solver import MultiGeneElasticNet, alpha_grid

    missing = [f for f in features if f not in train_features.columns]
    if missing:
        raise ValueError(f"training features lack {missing}")
    X = train_features[features].to_numpy(dtype=float)
    Y = train_targets[train_features.index].to_numpy(dtype=float).T
    a = alpha if isinstance(alpha, str) else float(alpha)
    model = MultiGeneElasticNet(
        penalty=penalty,
        alpha=a,
        l1_ratio=l1_ratio,
        alphas=alpha_grid(alpha_max, alpha_min, n_alphas),
        inner_cv=inner_folds,
        random_state=seed,
    )
    log.info("fitting %s model on %d features for %d genes", penalty, len(features), Y.shape[1])
    return model.fit(X, Y, sample_weight=sample_weight)


def outside_training_range(X: pd.DataFrame, train: pd.DataFrame, tolerance: float = 0.0):
    """Per feature, the fraction of rows of X outside the training min/max (+ tolerance)."""
    lo, hi = train.min(), train.max()
    pad = (hi - lo) * tolerance
    out = (X < (lo - pad)) | (X > (hi + pad))
    return out[X.notna()].mean().to_dict()
