"""Read per-cell feature tables, check them against the model, and screen their cells.

:func:`load_cells` is the whole path from a file to a :class:`CellInput` ready to predict:
:func:`read_cell_table` (any CSV/TSV/Parquet with an id column),
:func:`check_feature_columns` (the model's features, numeric), :func:`cell_metadata`
(the metadata carried to the output) and the :class:`~ephys2expr.predict.inputs.screen.CellScreen`.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.features import FEATURE_DESCRIPTIONS, PLAUSIBLE_RANGE
from ephys2expr.model.ood import describe_shift, shift_summary
from ephys2expr.model.store import ModelStore, describe_sets
from ephys2expr.paths import file_kind
from ephys2expr.predict.inputs.metadata import (
    METADATA_COLUMNS,
    cell_metadata,
    normalise_species,
    species_mismatch,
    warn_species,
)
from ephys2expr.predict.inputs.mistakes import TRAILING_DELIMITER, report_mistakes
from ephys2expr.predict.inputs.screen import FLAG_COLUMNS, CellScreen, ScreenResult, screen_summary
from ephys2expr.readers.columns import check_header, id_strings, numeric_values
from ephys2expr.readers.ipfx import ipfx_cells, is_ipfx_table

log = logging.getLogger("ephys2expr.predict")

ID_COLUMN = "cell_id"


def _preview(values, n: int = 5) -> str:
    values = [str(v) for v in values]
    more = f" ... ({len(values)} in all)" if len(values) > n else ""
    return "[" + ", ".join(values[:n]) + "]" + more


def _read_any(path: Path, id_column: str) -> pd.DataFrame:
    """The table as read, by suffix (ids kept as text exactly as written, so leading zeros
    survive and a cell named ``NA`` or ``None`` keeps its name), after
    :func:`~ephys2expr.readers.columns.check_header` (no repeated column, no short row;
    rows that all end in a delimiter are read without it, with one warning)."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        check_header(path)
        table = pd.read_parquet(path)
        if not isinstance(table.index, pd.RangeIndex) or table.index.name is not None:
            table = table.reset_index()
        return table
    seps = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
    if suffix not in seps:
        raise InputError(f"{path}: unknown table format '{suffix}' (use .csv, .tsv or .parquet)")
    # converters, not dtype: pandas turns 'NA', 'None', 'null' ... into NaN before a dtype
    # applies (a blank id is still caught by the caller)
    kwargs = {"sep": seps[suffix], "converters": {id_column: str}}
    trailing = check_header(path, seps[suffix])
    if trailing:  # said once by predict.inputs.mistakes (an error with predict.strict)
        kwargs["index_col"] = False
    table = pd.read_csv(path, **kwargs)
    table.attrs[TRAILING_DELIMITER] = trailing
    return table


def _check_input_file(path: Path) -> None:
    """One line if ``path`` is not a readable regular file: absent, a folder, a FIFO ...
    (a FIFO would block the read; both were reported as "no such file")."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: is {file_kind(mode)}, expected a table file (CSV/TSV/Parquet)")


def read_cell_table(path: str | os.PathLike, id_column: str | None = None) -> pd.DataFrame:
    """Read a per-cell table (CSV, TSV or Parquet) and index it by a unique string id.

    Parameters
    ----------
    path : path-like
        ``.csv``, ``.tsv``/``.txt`` (tab-separated) or ``.parquet``/``.pq``.
    id_column : str, optional
        Column (or Parquet index) holding the cell id; default ``cell_id``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``cell_id`` (str), all other columns as read.

    Raises
    ------
    InputError
        Unknown format, unreadable file, empty table, missing/blank or duplicated ids.
    """
    path = Path(path)
    id_column = id_column or ID_COLUMN
    _check_input_file(path)
    try:
        table = _read_any(path, id_column)
        if is_ipfx_table(table.columns):
            table, rep = ipfx_cells(table, str(path), id_column)
            log.info(
                "%s: an ipfx feature table (ids from '%s'); features derived from its "
                "columns, not derivable: %s; zeros read as missing: %s",
                path,
                rep["id_column"],
                ", ".join(rep["not_derived"]) or "none",
                rep["zero_as_missing"] or "none",
            )
    except InputError:
        raise
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: unreadable table ({str(exc).splitlines()[0]})") from None
    if id_column not in table.columns:
        raise InputError(
            f"{path}: no id column '{id_column}' (choose one with --id-column; "
            f"columns are {_preview(table.columns)})"
        )
    if len(table) == 0:
        raise InputError(f"{path}: the table has no rows")
    ids = table[id_column]
    if not pd.api.types.is_float_dtype(ids.dtype):  # float NaN ids: id_strings names them
        blank = ids.isna() | (ids.astype(str).str.strip() == "")
        if blank.any():
            raise InputError(
                f"{path}: column '{id_column}' has {int(blank.sum())} empty id(s), "
                f"first at row {int(np.flatnonzero(blank.to_numpy())[0]) + 1}"
            )
    ids = id_strings(ids, id_column, str(path)).str.strip()
    dup = ids[ids.duplicated()]
    if len(dup):
        raise InputError(
            f"{path}: column '{id_column}' has duplicate ids, e.g. {_preview(pd.unique(dup))}"
        )
    attrs = dict(table.attrs)
    table = table.drop(columns=[id_column])
    table.index = pd.Index(ids.to_numpy(), name=ID_COLUMN)
    table.attrs.update(attrs)
    return table


def check_feature_columns(
    cells: pd.DataFrame, features: list[str], where: str, implausible: str = "error"
) -> pd.DataFrame:
    """Return the model's feature columns as float64, or raise naming what is wrong.

    Missing values (empty cells, NaN) are allowed here; the missing policy handles them.
    Errors (one line naming the file, column, cell and value): a column that is not numbers (see
    :func:`~ephys2expr.readers.columns.numeric_values`), an infinite value, or a value outside
    the feature's physically possible range :data:`ephys2expr.features.PLAUSIBLE_RANGE`
    (features without a documented range only need to be finite). Values that large never reach
    the model, so no prediction can overflow. With ``implausible="drop_value"``
    (``predict.implausible``) such a value is a missing value instead (one warning line per
    column), so that one bad value does not stop a whole table.
    """
    missing = [f for f in features if f not in cells.columns]
    if missing:
        raise InputError(
            f"{where}: missing feature column(s) {missing} required by the model "
            f"(model features: {features})"
        )
    out = {}
    for name in features:
        col = cells[name]
        if isinstance(col, pd.DataFrame):
            raise InputError(f"{where}: feature column '{name}' appears {col.shape[1]} times")
        values = numeric_values(col, name, where, "feature column", "cell")
        inf = np.isinf(values.to_numpy())
        if inf.any():
            cell = values.index[inf][0]
            raise InputError(f"{where}: infinite value in column '{name}' (cell {cell})")
        limits = PLAUSIBLE_RANGE.get(name)
        if limits is not None:
            outside = ~limits.contains(values.to_numpy())
            if outside.any() and implausible == "drop_value":
                i = int(np.flatnonzero(outside)[0])
                log.warning(
                    "%s: column '%s': %d value(s) outside the plausible range %s of %s set "
                    "missing (predict.implausible: drop_value), e.g. cell %s: %g",
                    where,
                    name,
                    int(outside.sum()),
                    limits,
                    FEATURE_DESCRIPTIONS[name],
                    values.index[i],
                    values.iat[i],
                )
                values = values.mask(outside)
            elif outside.any():
                i = int(np.flatnonzero(outside)[0])
                raise InputError(
                    f"{where}: column '{name}', cell {values.index[i]}: {values.iat[i]:g} is "
                    f"outside the plausible range {limits} of {FEATURE_DESCRIPTIONS[name]} "
                    f"({int(outside.sum())} cell(s); fix the value or leave it empty for "
                    "predict.missing, or --set implausible=drop_value)"
                )
        out[name] = values
    return pd.DataFrame(out, index=cells.index)


def usable_features(
    cells: pd.DataFrame, store: ModelStore, missing: str, where: str, min_features: int
) -> list[str]:
    """The store's features the table has as columns, if they are enough for ``missing``.

    ``feature_set``: the columns must hold at least ``min_features`` of the store's features
    (each cell is then predicted by the set of exactly the features it has); otherwise the
    error lists the features present and the sets offered. ``drop``/``impute`` use the full
    set: every feature of it must be a column (:func:`check_feature_columns` says which are
    not).
    """
    if missing != "feature_set":
        return list(store.features)
    present = [f for f in store.features if f in cells.columns]
    if len(present) < min_features:
        raise InputError(
            f"{where}: its columns hold {len(present)} of the model's features "
            f"({', '.join(present) or 'none'}), fewer than cells.min_features = "
            f"{min_features}; the store offers {describe_sets(store)}"
        )
    return present


@dataclass
class CellInput:
    """One input table, read and screened, ready to predict (nothing written yet)."""

    name: str
    path: Path
    meta: pd.DataFrame  # all input cells: metadata columns
    screen: ScreenResult
    # per feature, the predicted cells against the training rows (model.ood.shift_summary)
    shift: dict = field(default_factory=dict)

    @property
    def kept_meta(self) -> pd.DataFrame:
        """Metadata + flags of the predicted cells, in input order."""
        flags = self.screen.flags.loc[self.screen.kept, FLAG_COLUMNS]
        return pd.concat([self.meta.loc[self.screen.kept], flags], axis=1)

    def summary(self) -> dict:
        """Cell counts overall and per species (:func:`~.screen.screen_summary`), and the
        predicted cells of another species than the store's."""
        out = screen_summary(self.meta, self.screen.flags, self.screen.kept, self.screen.set_names)
        mismatch = self.meta["species_mismatch"].to_numpy() & self.screen.kept
        out["species_mismatch"] = int(mismatch.sum())
        return out


def _log_summary(name: str, s: dict) -> None:
    counts = "%d in, %d predicted, %d dropped, %d imputed, %d extrapolated, %d ood"
    keys = ("cells_in", "predicted", "dropped", "imputed", "extrapolated", "ood")
    log.info("%s: " + counts, name, *(s[k] for k in keys))
    log.info("%s: cells per feature set: %s", name, s["by_feature_set"])
    for reason, n in s["dropped_by_reason"].items():
        log.info("%s: %d cells not predicted: %s", name, n, reason)
    for sp, c in s["per_species"].items():
        log.info(
            "%s: %s: " + counts + " (missing: %s)",
            name,
            sp,
            *(c[k] for k in keys),
            c["cells_missing_feature"] or "none",
        )


def load_cells(
    path: str | os.PathLike,
    store: ModelStore,
    screen: CellScreen,
    name: str | None = None,
    id_column: str | None = None,
    species: str | None = None,
    strict: bool = False,
    implausible: str = "error",
) -> CellInput:
    """Read and check one table and screen its cells against the store's training rows.

    Parameters
    ----------
    path : path-like
        The per-cell table (see :func:`read_cell_table`).
    store : ModelStore
        Gives the feature columns the table must have.
    screen : CellScreen
        Fitted on ``store``.
    name : str, optional
        Name of the input in logs, metrics and plots (default: the file's stem).
    id_column, species : str, optional
        See :func:`read_cell_table` and :func:`cell_metadata`.
    strict : bool
        ``predict.strict``: a likely mistake (:mod:`ephys2expr.predict.inputs.mistakes`) is an
        error, not a warning.
    implausible : str
        ``predict.implausible``: ``error`` or ``drop_value`` (see
        :func:`check_feature_columns`).
    """
    path = Path(path)
    cells = read_cell_table(path, id_column=id_column)
    usable = usable_features(cells, store, screen.missing, str(path), screen.min_features)
    features = check_feature_columns(cells, usable, str(path), implausible)
    report_mistakes(
        str(path),
        cells,
        features,
        list(store.features),
        store.train_features,
        METADATA_COLUMNS,
        strict,
    )
    meta = cell_metadata(cells, species=species, where=str(path))
    store_species = str(store.provenance.get("species", "unknown"))
    meta["species_mismatch"] = species_mismatch(meta["species"], store_species)
    screened = screen.transform(features)
    shift = {}
    if store.train_features is not None:
        shift = shift_summary(store.train_features, features[screened.kept], list(usable))
    item = CellInput(name=name or path.stem, path=path, meta=meta, screen=screened, shift=shift)
    _log_summary(item.name, item.summary())
    if shift:
        log.info(
            "%s: features shifted most from the training rows (SMD): %s",
            item.name,
            describe_shift(shift),
        )
    warn_species(item.name, meta, screened.kept, store_species)
    return item


__all__ = [
    "ID_COLUMN",
    "METADATA_COLUMNS",
    "CellInput",
    "cell_metadata",
    "check_feature_columns",
    "load_cells",
    "normalise_species",
    "read_cell_table",
    "species_mismatch",
    "usable_features",
]
