"""Paired Patch-seq cells (Cadwell 2016): predicted from their own ephys vs measured.

The Cadwell cells have 7 of the model's 11 features, so the model store's feature set of
exactly those features (trained with its own nested CV and null) predicts each cell; per
gene and per cell, predictions are compared with the measured expression and with the
training-mean profile (a model that ignores the ephys).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.features import CADWELL_FEATURES
from ephys2expr.model.store import describe_sets
from ephys2expr.readers.cadwell import PatchSeqSet
from ephys2expr.validate.agreement import corr_rows

log = logging.getLogger("ephys2expr")


def _pearson_columns(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of A and B (NaN where either is constant)."""
    A = A - A.mean(axis=0)
    B = B - B.mean(axis=0)
    den = np.sqrt((A * A).sum(axis=0) * (B * B).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (A * B).sum(axis=0) / den, np.nan)


def varies_columns(P: np.ndarray) -> np.ndarray:
    """Columns of P that are not constant. A gene whose coefficients are all zero is
    predicted as a constant (its r is undefined), and floating-point residue (1e-16) must
    not count as variation."""
    return P.std(axis=0) > 1e-9 * (1.0 + np.abs(P).mean(axis=0))


def _gene_block(per_gene: pd.DataFrame, mask: np.ndarray) -> dict:
    """Summary of the per-gene comparison over the genes of ``mask``."""
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
    varies = varies_columns(P)
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
    summary = {
        "n_cells": int(len(cells)),
        "genes_all": _gene_block(per_gene, np.ones(len(per_gene), dtype=bool)),
        "genes_cv_good": _gene_block(per_gene, per_gene["cv_good"].to_numpy()),
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


def stored_feature_set(store, features: list[str], genes: pd.Index, where: str = "model store"):
    """The store's model of exactly ``features`` (any order), as a predictor of ``genes``.

    Validation predicts with stored models only (each trained with its own nested CV and
    null), never with a fit of its own; a store without such a set is an error naming the
    setting that adds one.

    Returns
    -------
    predict : callable
        ``predict(X)`` with ``X`` a DataFrame holding the feature columns: a DataFrame of
        cells x ``genes``.
    name : str
        The feature set's name.
    """
    for name, model in store.feature_sets.items():
        if sorted(model.features) == sorted(features):
            log.info("using the store's feature set %r for %s", name, ", ".join(features))

            def predict(X, model=model):
                values = model.predict(X[model.features].to_numpy(dtype=float))
                return pd.DataFrame(values, index=X.index, columns=model.gene_names)[genes]

            return predict, name
    raise InputError(
        f"{where}: no feature set of exactly {', '.join(features)} (add one to params.yaml "
        f"train.feature_sets; the store offers {describe_sets(store)})"
    )


def outside_training_range(X: pd.DataFrame, train: pd.DataFrame, tolerance: float = 0.0):
    """Per feature, the fraction of rows of X outside the training min/max (+ tolerance)."""
    lo, hi = train.min(), train.max()
    pad = (hi - lo) * tolerance
    out = (X < (lo - pad)) | (X > (hi + pad))
    return out[X.notna()].mean().to_dict()


def nearest_type(pred: pd.DataFrame, type_means: pd.DataFrame) -> pd.Series:
    """For each row of ``pred``, the training type whose mean profile correlates best."""
    r = corr_rows(pred[type_means.columns].to_numpy(), type_means.to_numpy())
    return pd.Series(type_means.index[np.argmax(r, axis=1)], index=pred.index, name="type")


@dataclass
class PatchSeqResult:
    """Per-gene and per-cell comparison tables and their summary (see
    :func:`patchseq_agreement`); ``per_cell`` also has ``major_type`` and
    ``nearest_training_type``; ``predicted`` is cells x genes (the cross-source comparison
    reuses it)."""

    per_gene: pd.DataFrame
    per_cell: pd.DataFrame
    summary: dict
    predicted: pd.DataFrame


def validate_patchseq(
    cells: PatchSeqSet,
    train_features: pd.DataFrame,
    train_targets: pd.DataFrame,
    cv_good: pd.Index,
    store,
    where: str = "model store",
) -> PatchSeqResult:
    """Predict the Patch-seq cells from their own ephys and compare with their expression.

    Parameters
    ----------
    cells : PatchSeqSet
        The Cadwell 2016 cells.
    train_features, train_targets
        The training tables (types x features, genes x types).
    cv_good : Index
        Genes the model store predicts well in CV.
    store : ModelStore
        The model store: its feature set of exactly Cadwell's features
        (:data:`~ephys2expr.features.CADWELL_FEATURES`) predicts the cells.
    where : str
        The store's folder, for errors.
    """
    tf, tt = train_features, train_targets
    predict, name = stored_feature_set(store, CADWELL_FEATURES, tt.index, where)
    features, source = store.model(name).features, f"stored feature set '{name}'"
    complete = cells.features[features].notna().all(axis=1)
    ps_feats = cells.features.loc[complete, features]
    ps_pred = predict(ps_feats)
    baseline = tt[tf.index].mean(axis=1)  # training mean profile (each type counts once)
    good = cv_good.intersection(tt.index)
    per_gene, per_cell, summary = patchseq_agreement(
        ps_pred, cells.expr.loc[ps_feats.index], baseline, list(good)
    )
    summary["n_cells_missing_feature"] = int((~complete).sum())
    summary["n_genes_cv_good_in_store"] = int(len(good))
    summary["features"] = list(features)
    summary["model"] = source
    summary["frac_cells_outside_training_range"] = outside_training_range(ps_feats, tf[features])
    per_cell["major_type"] = cells.meta.loc[per_cell.index, "major_type"]
    for t in sorted(per_cell["major_type"].unique()):
        sub = per_cell[per_cell["major_type"] == t]
        summary["cells"][f"median_r_deviation_{t}"] = float(sub["r_dev_model"].median())
    # which training types the Cadwell cells' predictions resemble most (nearest type mean)
    nearest = nearest_type(ps_pred, tt[tf.index].T)
    summary["nearest_training_type_counts"] = nearest.value_counts().to_dict()
    per_cell["nearest_training_type"] = nearest
    return PatchSeqResult(per_gene, per_cell, summary, ps_pred)


__all__ = [
    "PatchSeqResult",
    "nearest_type",
    "outside_training_range",
    "patchseq_agreement",
    "stored_feature_set",
    "validate_patchseq",
    "varies_columns",
]
