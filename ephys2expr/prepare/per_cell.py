"""Paired (Patch-seq) training sources -> per-cell training tables (CONTRIBUTING.md contract).

``train_features`` has one row per cell (index ``cell_id``, ``prepare.paired_features`` in
order), ``train_targets`` is genes x cells (log2(CPM + 1) from the library size given), and
``train_types`` one row per cell: ``broad_type`` (Exc/Inh from the RNA family), ``weight`` 1,
``group`` (the animal: cross-validation keeps it whole), ``family``, ``type`` and the
source's extra metadata. Genes are kept when detected (count > 0) in at least
``prepare.min_detected`` of the cells: a gene seen in a handful of cells has almost no
variance to predict, and its r2 would be dominated by those few cells.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.prepare.settings import PrepareSettings
from ephys2expr.readers.paired_layout import MetadataColumns, PairedSet, read_paired
from ephys2expr.readers.scala import read_scala2021

log = logging.getLogger("ephys2expr.prepare")


def read_paired_source(source: str, settings: PrepareSettings, raw_dir: Path) -> PairedSet:
    """The cells of ``source`` (``scala2021`` or a name in ``prepare.paired``) with
    ``paired_features``."""
    features = settings.paired_features
    kind = settings.kind(source)
    if kind == "scala2021":
        return read_scala2021(raw_dir, feature_names=features)
    if kind == "paired":
        entry = settings.paired[source]
        cols = entry["columns"]
        columns = MetadataColumns(
            library=cols["library"],
            group=cols["group"],
            type=cols["type"],
            family=cols["family"] or None,
        )
        return read_paired(
            entry["features"],
            entry["counts"],
            entry["metadata"],
            columns,
            id_column=cols["id"],
            layer=entry["layer"] or None,
            feature_names=features,
        )
    raise InputError(
        f"--source: {source!r} is not a per-cell source (scala2021 or a name in prepare.paired)"
    )


def detected_genes(expression: pd.DataFrame, min_detected: float, where: str) -> np.ndarray:
    """Mask of genes with a count > 0 (log2 CPM > 0) in at least ``min_detected`` of cells and
    some variance; no gene left is an error."""
    values = expression.to_numpy()
    share = (values > 0).mean(axis=1)
    keep = (share >= min_detected) & (values.var(axis=1) > 0)
    if not keep.any():
        raise InputError(
            f"{where}: no gene is detected in at least {min_detected:g} of the "
            f"{values.shape[1]} cells (prepare.min_detected)"
        )
    return keep


def paired_training_tables(
    paired: PairedSet, settings: PrepareSettings, source: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """``(train_features, train_targets, train_types, report)`` of a paired set."""
    keep = detected_genes(paired.expression, settings.min_detected, f"{source} counts")
    targets = paired.expression[keep]
    features = paired.features[settings.paired_features]
    types = paired.metadata.copy()
    types["weight"] = 1.0
    first = ["broad_type", "weight", "group", "family", "type"]
    types = types[first + [c for c in types.columns if c not in first]]
    unknown = int((types["broad_type"] == "").sum())
    if unknown:
        log.warning("%d cells have a family with no Exc/Inh class (class baseline: own)", unknown)
    report = {
        "source": source,
        "cells": int(len(features)),
        "cells_exc": int((types["broad_type"] == "Exc").sum()),
        "cells_inh": int((types["broad_type"] == "Inh").sum()),
        "groups": int(types["group"].nunique()),
        "features": len(settings.paired_features),
        "genes_in": int(len(paired.expression)),
        "genes_kept": int(keep.sum()),
        "min_detected": settings.min_detected,
        "cells_excluded": int(sum(paired.report.get("excluded", {}).values())),
        "paired": paired.report,
    }
    log.info(
        "%s: %d cells of %d animals x %d features; %d of %d genes detected in >= %g of cells",
        source,
        len(features),
        report["groups"],
        features.shape[1],
        keep.sum(),
        len(paired.expression),
        settings.min_detected,
    )
    return features, targets, types, report


__all__ = ["detected_genes", "paired_training_tables", "read_paired_source"]
