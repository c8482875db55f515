"""What a predict run reports: the headline metrics, marker medians and constant genes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.model.store import ModelStore
from ephys2expr.predict.inputs.screen import rank_feature_sets
from ephys2expr.predict.intervals import interval_methods
from ephys2expr.predict.outputs.read import constant_genes
from ephys2expr.predict.outputs.write import PREDICTION_DTYPE


def marker_medians(markers: pd.DataFrame, meta: pd.DataFrame) -> dict:
    """Median predicted log2 expression of each marker gene per species and dendrite type
    (with the cell count): how the markers separate cell classes, e.g. for human cells."""
    out: dict = {}
    dendrite = meta.get("dendrite_type", pd.Series("unknown", index=meta.index)).fillna("unknown")
    for (species, dtype), rows in markers.groupby([meta["species"], dendrite]):
        entry = {"n_cells": int(len(rows)), **rows.median().round(3).to_dict()}
        out.setdefault(str(species), {})[str(dtype)] = entry
    return out


def headline_metrics(report: dict) -> dict:
    """What ``dvc metrics show`` prints for a predict run: ``genes`` and ``cells`` predicted
    (cells summed over the input tables). Per input, per species, per feature set, the share
    extrapolated and below zero: the report."""
    return {
        "genes": report["model"]["genes_predicted"],
        "cells": sum(s["predicted"] for s in report["inputs"].values()),
    }


def constant_genes_note(store: ModelStore, gene_idx: np.ndarray, where: str) -> dict:
    """What the files say about genes left out because their model is constant."""
    const = constant_genes(store)
    omitted = np.setdiff1d(const, gene_idx)
    folder = repr(where) if Path(where).is_dir() else "'<model store folder>'"
    return {
        "constant_genes": int(len(const)),
        "constant_genes_omitted": int(len(omitted)),
        "constant_genes_value": (
            "genes of the model store whose coefficients are all zero predict their "
            f"'intercept' ({where}/genes.parquet) for every cell; those not in this file "
            "(constant_genes_omitted) are that constant: "
            f"ephys2expr.predict.outputs.read.read_predictions(path, store={folder}) fills them in"
        ),
    }


__all__ = ["constant_genes_note", "headline_metrics", "marker_medians"]


def model_report(
    store: ModelStore, gene_idx, constant: dict, quality: dict, no_null: list, level: float | None
) -> dict:
    """The report's ``model`` section: genes, features, sets, trusted genes per set,
    intervals (``on_demand_sets`` is added by the caller)."""
    report = {
        "genes_in_model": len(store.primary.genes),
        "genes_predicted": len(gene_idx),
        "features": store.features,
        "feature_sets": {name: m.features for name, m in store.feature_sets.items()},
        "feature_set_preference": rank_feature_sets(store),
        **constant,
        "trusted_genes_by_set": {k: int(v) for k, v in quality["trusted"].sum().items()},
        "sets_without_null": no_null,
    }
    if level is not None:
        report["intervals"] = {"level": level, "method": interval_methods(store)}
    return report


def file_metadata(
    store: ModelStore, settings, constant: dict, no_null: list, level: float | None, where: str
) -> dict:
    """What every predictions file of a run records in its metadata (uns ``ephys2expr``)."""
    meta = {
        "features": store.features,
        "feature_sets": {name: m.features for name, m in store.feature_sets.items()},
        "sets_without_null": no_null,
        "quality": "varm[key][feature_set], genes x feature sets: cv_r2, beats_<baseline>, "
        "q_value, trusted (beats mean and OLS and q < train.fdr_q; beats_class_oracle "
        "apart: the class baseline uses the true class); each cell's trusted "
        "genes: varm['trusted'][obs['feature_set']].T (ephys2expr.predict.quality)",
        "missing_policy": settings.missing,
        "extrapolation_tolerance": settings.extrapolation_tolerance,
        "ood_neighbors": settings.ood_neighbors,
        "ood_percentile": settings.ood_percentile,
        "genes": settings.genes,
        "only_predictable": settings.only_predictable,
        **constant,
        "dtype": np.dtype(PREDICTION_DTYPE).name,
        "model_provenance": store.provenance,
        # the folder as given (read_predictions' hint for the constant genes)
        "model_store": where if Path(where).is_dir() else "",
    }
    if level is not None:
        meta["intervals"] = {
            "level": level,
            "method": interval_methods(store),
            "layers": ["lower", "upper"],
            "dtype": "float16",
            "what": (
                "central prediction interval per cell and gene: split-conformal on the "
                "training's out-of-fold residuals; a cell like the training cells has its "
                "measured value inside with probability 'level' (per gene, on average over "
                "cells); never below 0; rounded outward"
            ),
        }
    return meta
