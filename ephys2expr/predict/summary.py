"""What a predict run reports: the headline metrics, marker medians and constant genes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.model.store import ModelStore
from ephys2expr.predict.read import constant_genes


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
            f"ephys2expr.predict.read.read_predictions(path, store={folder}) fills them in"
        ),
    }


__all__ = ["constant_genes_note", "headline_metrics", "marker_medians"]
