"""Reading and checking prepare's three training tables (the data contract in CONTRIBUTING.md).

Targets can be read whole (a genes x types DataFrame) or streamed a chunk of genes at a
time (:class:`ParquetTargets`), for training sets too large to hold at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError

TRAINING_TABLES = ("train_features", "train_targets", "train_types")


def training_paths(prepared_dir: Path) -> dict[str, Path]:
    """Prepare's three training tables in ``prepared_dir``, by name."""
    return {name: Path(prepared_dir) / f"{name}.parquet" for name in TRAINING_TABLES}


class ParquetTargets:
    """Genes x cell types (or cells) read from Parquet a chunk of genes at a time.

    For training sets too large to hold at once (thousands of per-cell rows x 45,000
    genes): :func:`train_and_evaluate` reads one chunk of genes (a batch of Parquet rows)
    per task instead of the whole table.

    Parameters
    ----------
    path : path-like
        Parquet with one row per gene: a ``gene`` column (or index) and one float column per
        cell type / cell.
    columns : list of str
        The cell-type / cell columns, in the order of the features' rows.
    """

    def __init__(self, path, columns: list[str]):
        import pyarrow.parquet as pq

        self.path = path
        self.columns = list(columns)
        self._file = pq.ParquetFile(path)
        names = self._file.schema_arrow.names
        missing = [c for c in ["gene", *self.columns] if c not in names]
        if missing:
            raise InputError(f"{path}: no column '{missing[0]}'")
        self.index = pd.Index(
            self._file.read(columns=["gene"]).column("gene").to_pylist(), name="gene"
        )

    def __len__(self) -> int:
        return len(self.index)

    def iter_chunks(self, size: int):
        """Yield arrays of shape (genes in chunk, columns), ``size`` genes at a time."""
        size = len(self) if size <= 0 else size
        for batch in self._file.iter_batches(batch_size=size, columns=self.columns):
            yield np.column_stack(
                [batch.column(i).to_numpy(zero_copy_only=False) for i in range(len(self.columns))]
            )


def load_training_inputs(features_path, targets_path, types_path, stream: bool = False):
    """Read and check prepare's three training tables (see CONTRIBUTING.md).

    Returns ``(features, targets, types)``: types x features, genes x types (columns in the
    features' row order) and the type metadata indexed like ``features``. Any mismatch is an
    :class:`InputError` naming the file and the column or value. With ``stream=True`` the
    targets come back as a :class:`ParquetTargets` (read a gene chunk at a time later; their
    values are not checked here).
    """
    features = pd.read_parquet(features_path)
    types = pd.read_parquet(types_path)
    if stream:
        targets = ParquetTargets(targets_path, list(features.index))
        if features.empty or len(targets) == 0:
            raise InputError(f"{features_path if features.empty else targets_path}: empty table")
        _check_features(features, features_path)
        return features.astype(float), targets, _check_types(types, features, types_path)
    targets = pd.read_parquet(targets_path)
    if features.empty or targets.empty:
        raise InputError(f"{features_path if features.empty else targets_path}: empty table")
    _check_features(features, features_path)
    missing = [t for t in features.index if t not in targets.columns]
    if missing:
        raise InputError(f"{targets_path}: no column for cell type '{missing[0]}'")
    targets = targets[list(features.index)]
    if not all(pd.api.types.is_numeric_dtype(targets[c]) for c in targets.columns):
        raise InputError(f"{targets_path}: non-numeric expression values")
    if targets.isna().to_numpy().any():
        gene = targets.index[targets.isna().any(axis=1)][0]
        raise InputError(f"{targets_path}: missing expression for gene '{gene}'")
    if targets.index.has_duplicates:
        raise InputError(
            f"{targets_path}: duplicate gene '{targets.index[targets.index.duplicated()][0]}'"
        )
    return features.astype(float), targets.astype(float), _check_types(types, features, types_path)


def _check_features(features: pd.DataFrame, features_path) -> None:
    for col in features.columns:
        if not pd.api.types.is_numeric_dtype(features[col]):
            raise InputError(f"{features_path}: column '{col}' is not numeric")
        if features[col].isna().any():
            bad = features.index[features[col].isna()][0]
            raise InputError(f"{features_path}: column '{col}' is missing for '{bad}'")
    if features.index.has_duplicates:
        raise InputError(
            f"{features_path}: duplicate cell type "
            f"'{features.index[features.index.duplicated()][0]}'"
        )


def _check_types(types: pd.DataFrame, features: pd.DataFrame, types_path) -> pd.DataFrame:
    for col in ("broad_type", "weight"):
        if col not in types.columns:
            raise InputError(f"{types_path}: missing column '{col}'")
    absent = [t for t in features.index if t not in types.index]
    if absent:
        raise InputError(f"{types_path}: no row for cell type '{absent[0]}'")
    types = types.loc[features.index]
    if "group" in types.columns:  # per-cell data: the animal each cell came from
        blank = types["group"].isna() | (types["group"].astype(str).str.strip() == "")
        if blank.any():
            raise InputError(f"{types_path}: no group for '{types.index[blank][0]}'")
    w = types["weight"].to_numpy(dtype=float)
    if not np.all(np.isfinite(w) & (w > 0)):
        bad = types.index[~(np.isfinite(w) & (w > 0))][0]
        raise InputError(f"{types_path}: column 'weight' is not a positive number for '{bad}'")
    return types


def training_species(types: pd.DataFrame) -> str:
    """The species of the training rows (``train_types`` ``species``; prepare writes it):
    ``mouse``, several joined by ``,``, or ``unknown`` for tables without the column.
    The model store records it; predict flags cells of another species."""
    if "species" not in types.columns:
        return "unknown"
    return ",".join(sorted(set(types["species"].astype(str))))


__all__ = [
    "TRAINING_TABLES",
    "ParquetTargets",
    "load_training_inputs",
    "training_paths",
    "training_species",
]
