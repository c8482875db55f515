"""The prepare step: raw files -> tidy, typed training and prediction tables."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ephys2expr import paths
from ephys2expr.errors import InputError
from ephys2expr.features import ALL_FEATURES, check_feature_names
from ephys2expr.genes import read_entrez_symbols
from ephys2expr.readers import (
    TrainingSet,
    read_online_table3,
    read_r,
    read_training_rds,
)

log = logging.getLogger("ephys2expr.prepare")

# Allen per-cell inputs: name -> (file, features absent from that table).
# v10 has no membrane time constant column, so tau (and cap = 1000 tau / rin) are
# back-filled from v6 for the cells both tables share.
CELL_INPUTS: dict[str, tuple[Path, tuple[str, ...]]] = {
    "aibs_v6": (paths.AIBS_EPHYS_V6, ()),
    "aibs_v10": (paths.AIBS_EPHYS_V10, ("tau",)),
}


def parse_feature_list(text: str) -> list[str]:
    """``"rin, rmp,apthr"`` -> ``["rin", "rmp", "apthr"]``, checked against known features."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    check_feature_names(names)
    return names


def load_training_set(
    source: str, online_table3: Path | None = None, raw_dir: Path = paths.RAW
) -> TrainingSet:
    """Read the training table named by ``source`` (``rds`` or ``online_table3``).

    Gene symbols are restored / mapped with the Entrez table, the only list of true
    symbols we have (``tasic_gene_names.rda`` went through ``make.names`` too).
    """
    entrez = read_entrez_symbols(paths.in_raw_dir(raw_dir, paths.ENTREZ_SYMBOLS))
    if source == "rds":
        training = read_training_rds(
            paths.in_raw_dir(raw_dir, paths.TRAINING_RDS), list(entrez.to_numpy())
        )
        # The Tasic gene list: the universe the table's gene columns must come from.
        tasic_genes = {str(g) for g in read_r(paths.in_raw_dir(raw_dir, paths.GENE_NAMES_RDS))}
        original = training.notes.pop("original_gene_names")
        training.notes["genes_not_in_tasic_list"] = sum(g not in tasic_genes for g in original)
        return training
    if source == "online_table3":
        if online_table3 is None:
            raise InputError("params.yaml prepare.online_table3: no file given")
        return read_online_table3(online_table3, entrez)
    raise InputError(
        f"params.yaml prepare.training_source: unknown value {source!r} "
        "(expected rds or online_table3)"
    )


def select_features(training: TrainingSet, features: list[str], where: str) -> pd.DataFrame:
    """The training features in params order; NaN or absent features are errors."""
    absent = [f for f in features if f not in training.features.columns]
    if absent:
        raise InputError(
            f"{where}: feature(s) {absent} not in the training table "
            f"(it has {list(training.features.columns)})"
        )
    selected = training.features[features].astype(float)
    if selected.isna().any().any():
        col = selected.columns[selected.isna().any()][0]
        row = selected.index[selected[col].isna()][0]
        raise InputError(f"{where}: missing value in feature '{col}' for type {row!r}")
    return selected


def backfill_from(cells: pd.DataFrame, donor: pd.DataFrame, columns: list[str]) -> int:
    """Fill NaN ``columns`` of ``cells`` from ``donor`` rows with the same cell id.

    Returns the number of cells that received values.
    """
    shared = cells.index.intersection(donor.index)
    if len(shared) == 0:
        return 0
    before = cells.loc[shared, columns].isna().all(axis=1)
    filled = cells.loc[shared, columns].fillna(donor.loc[shared, columns])
    cells.loc[shared, columns] = filled
    after = cells.loc[shared, columns].isna().all(axis=1)
    return int((before & ~after).sum())


def cell_summary(cells: pd.DataFrame, features: list[str]) -> dict:
    """Counts per species: cells, cells with a missing model feature, per-feature NaNs."""
    out = {"cells": int(len(cells))}
    for species, group in cells.groupby("species", sort=True):
        out[f"cells_{species}"] = int(len(group))
        out[f"cells_{species}_missing_features"] = int(group[features].isna().any(axis=1).sum())
    out["cells_missing_features"] = int(cells[features].isna().any(axis=1).sum())
    out["missing_by_feature"] = {f: int(cells[f].isna().sum()) for f in ALL_FEATURES}
    return out


def summarise_types(types: pd.DataFrame) -> dict:
    return {
        "types": int(len(types)),
        "types_exc": int((types["broad_type"] == "Exc").sum()),
        "types_inh": int((types["broad_type"] == "Inh").sum()),
    }


def gene_counts(report) -> dict:
    return {
        "genes_in": report.n_genes_in,
        "genes_after_zero_variance": report.n_after_zero_variance,
        "genes_after_min_expression": report.n_after_min_expression,
        "genes_after_top_variable": report.n_after_top_variable,
    }
