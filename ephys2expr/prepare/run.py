"""The whole prepare step: read and check every raw input, return the tables to write."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ephys2expr import paths
from ephys2expr.errors import InputError
from ephys2expr.features import ALL_FEATURES
from ephys2expr.prepare.genes import filter_genes
from ephys2expr.prepare.per_cell import paired_training_tables, read_paired_source
from ephys2expr.prepare.settings import SOURCE_SPECIES, PrepareSettings
from ephys2expr.readers.allen import read_allen_cells
from ephys2expr.readers.derive import with_derived
from ephys2expr.readers.r import read_r
from ephys2expr.readers.training import (
    TrainingSet,
    read_entrez_symbols,
    read_online_table3,
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


@dataclass
class Prepared:
    """What :func:`prepare` read: the tables to write, headline metrics and the report."""

    train_features: pd.DataFrame  # types x features, params order
    train_targets: pd.DataFrame  # genes x types, log2 expression, filtered
    train_types: pd.DataFrame  # types x metadata
    cells: dict[str, pd.DataFrame]  # Allen input name -> cells x (metadata + ALL_FEATURES)
    metrics: dict
    report: dict

    def tables(self) -> dict[str, pd.DataFrame]:
        """File name (in the prepared folder) -> table."""
        out = {
            "train_features.parquet": self.train_features,
            "train_targets.parquet": self.train_targets,
            "train_types.parquet": self.train_types,
        }
        out.update({f"cells_{name}.parquet": table for name, table in self.cells.items()})
        return out


def load_training_set(
    source: str, online_table3: Path | str | None = None, raw_dir: Path = paths.RAW
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
        if not online_table3:
            raise InputError("params.yaml prepare.online_table3: no file given")
        return read_online_table3(online_table3, entrez)
    raise InputError(f"params.yaml prepare.type_mean_source: unknown value {source!r}")


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


def read_cell_inputs(raw_dir: Path) -> tuple[dict[str, pd.DataFrame], dict[str, dict]]:
    """Every Allen per-cell table of :data:`CELL_INPUTS`, absent features back-filled."""
    cells, reports = {}, {}
    for name, (path, absent) in CELL_INPUTS.items():
        cells[name], reports[name] = read_allen_cells(
            paths.in_raw_dir(raw_dir, path), absent=absent
        )
    for name, (_path, absent) in CELL_INPUTS.items():
        if absent:
            fill = list(with_derived(absent))
            reports[name]["cells_backfilled_from_aibs_v6"] = backfill_from(
                cells[name], cells["aibs_v6"], fill
            )
            reports[name]["absent_features"] = fill
    return cells, reports


def cell_summary(cells: pd.DataFrame, features: list[str]) -> dict:
    """Counts per species: cells, cells with a missing model feature, per-feature NaNs."""
    out = {"cells": int(len(cells))}
    for species, group in cells.groupby("species", sort=True):
        out[f"cells_{species}"] = int(len(group))
        out[f"cells_{species}_missing_features"] = int(group[features].isna().any(axis=1).sum())
    out["cells_missing_features"] = int(cells[features].isna().any(axis=1).sum())
    out["missing_by_feature"] = {f: int(cells[f].isna().sum()) for f in ALL_FEATURES}
    return out


def _headline(report: dict) -> dict:
    """What ``dvc metrics show`` prints for a type-mean source: the genes kept for training
    (every other number, the Allen cells included, stays in the report; docs/pipeline.md)."""
    return {"genes": report["genes_after_top_variable"]}


def prediction_inputs(raw_dir: Path, features: list[str]) -> tuple[dict, dict]:
    """The Allen per-cell tables and their report (counts for the model's ``features``)."""
    log.info("reading Allen per-cell tables")
    cells, cell_reports = read_cell_inputs(raw_dir)
    report = {
        name: {**cell_reports[name], **cell_summary(table, features)}
        for name, table in cells.items()
    }
    return cells, report


def _paired_headline(report: dict) -> dict:
    """What ``dvc metrics show`` prints for a paired source: the genes and cells kept for
    training (animals, exclusions by reason and the Allen cells are in the report)."""
    return {"genes": report["genes_kept"], "cells": report["cells"]}


def with_species(types: pd.DataFrame, source: str) -> pd.DataFrame:
    """``train_types`` with a ``species`` column: the source's (:data:`SOURCE_SPECIES`),
    kept (lower case) where the table has one, ``unknown`` where neither says."""
    types = types.copy()
    default = SOURCE_SPECIES.get(source, "unknown")
    if "species" in types.columns:
        given = types["species"].astype("string").str.strip().str.lower()
        types["species"] = given.mask(given == "").fillna(default).astype(str)
    else:
        types["species"] = default
    return types


def prepare(raw_dir: Path | str, settings: PrepareSettings, source: str | None = None) -> Prepared:
    """Read and check every raw input; return the prepared tables, metrics and report.

    Parameters
    ----------
    raw_dir : path-like
        A folder laid out like ``data/raw``.
    settings : PrepareSettings
        Sources, feature lists (in order) and gene filters.
    source : str, optional
        The training source to prepare (default ``settings.type_mean_source``): a type-mean
        table (``rds``, ``online_table3``) or paired cells (``scala2021`` or a name defined in
        ``settings.paired``; see
        :mod:`ephys2expr.prepare.per_cell`). Either way the Allen per-cell tables are prepared
        too, so each source's folder holds everything train and predict need.

    Returns
    -------
    Prepared
        Nothing is written here: the caller writes the tables only once all were read.

    Raises
    ------
    InputError
        One line naming the file and the column or value that is wrong.
    """
    source = source or settings.type_mean_source
    if settings.kind(source) is None:
        raise InputError(
            f"--source: unknown training source {source!r} (rds, online_table3, scala2021 or "
            f"a name defined in prepare.paired: {sorted(settings.paired)})"
        )
    if settings.kind(source) == "type_mean":
        return _prepare_type_means(Path(raw_dir), settings, source)
    start = time.perf_counter()
    raw_dir = Path(raw_dir)
    log.info("reading paired cells (%s)", source)
    paired = read_paired_source(source, settings, raw_dir)
    features, targets, types, report = paired_training_tables(paired, settings, source)
    types = with_species(types, source)
    cells, inputs_report = prediction_inputs(raw_dir, settings.paired_features)
    report = {
        "settings": settings.source_settings(source),
        **report,
        "prediction_inputs": inputs_report,
    }
    log.info("read and checked everything in %.1f s", time.perf_counter() - start)
    return Prepared(features, targets, types, cells, _paired_headline(report), report)


def _prepare_type_means(raw_dir: Path, settings: PrepareSettings, source: str) -> Prepared:
    """:func:`prepare` for a type-mean table (``rds``, ``online_table3``)."""
    start = time.perf_counter()
    features = settings.features
    log.info("reading training table (%s)", source)
    training = load_training_set(source, settings.online_table3, raw_dir)
    train_features = select_features(
        training, features, f"params.yaml prepare.features ({source} table)"
    )
    targets, gene_report = filter_genes(
        training.targets,
        min_max_log2=settings.min_max_log2,
        top_variable=settings.top_variable,
        where=f"{source} training table",
    )
    log.info(
        "training: %d types x %d features, %d of %d genes kept",
        len(train_features),
        len(features),
        len(targets),
        len(training.targets),
    )
    cells, inputs_report = prediction_inputs(raw_dir, features)
    types = with_species(training.types, source)
    report = {
        "settings": settings.source_settings(source),
        "source": source,
        "types": int(len(types)),
        "types_exc": int((types["broad_type"] == "Exc").sum()),
        "types_inh": int((types["broad_type"] == "Inh").sum()),
        "features": len(features),
        **gene_report.as_dict(),
        "prediction_inputs": inputs_report,
    }
    if training.restoration is not None:
        report["symbols_restored"] = training.restoration.n_restored
        report["symbols_unchanged"] = training.restoration.n_unchanged
        report["symbols_unresolved"] = len(training.restoration.unresolved)
    report.update({k: v for k, v in training.notes.items() if isinstance(v, int | float)})
    log.info("read and checked everything in %.1f s", time.perf_counter() - start)
    return Prepared(train_features, targets, types, cells, _headline(report), report)
