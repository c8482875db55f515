"""Typed table columns whose errors name the file, the column and the value."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ephys2expr.errors import InputError


def numeric_column(df: pd.DataFrame, column: str, where: str) -> pd.Series:
    """Column as float; a non-numeric value is an :class:`InputError` naming it.

    Blank cells and R's ``NA``/``NaN`` spellings are missing values, not errors.
    """
    col = df[column]
    if pd.api.types.is_bool_dtype(col):
        raise InputError(f"{where}: column '{column}' is boolean, expected numbers")
    if pd.api.types.is_numeric_dtype(col):
        return col.astype(float)
    converted = pd.to_numeric(col, errors="coerce")
    bad = col[converted.isna() & col.notna()]
    bad = bad[~bad.astype(str).str.strip().isin(["", "NA", "NaN", "nan"])]
    if len(bad):
        raise InputError(
            f"{where}: non-numeric value {str(bad.iloc[0])!r} in column '{column}' "
            f"(row {bad.index[0]!r})"
        )
    return converted.astype(float)


def check_unique(index: pd.Index, what: str, where: str) -> None:
    """Raise :class:`InputError` naming the first repeated label of ``index``."""
    if index.has_duplicates:
        dup = index[index.duplicated()][0]
        raise InputError(f"{where}: duplicate {what} {dup!r}")


def read_csv_table(path, **kwargs) -> pd.DataFrame:
    """``pandas.read_csv`` whose parse failures are one :class:`InputError` naming ``path``."""
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: unreadable CSV ({exc})") from None


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV/TSV (separator from the header line) or Parquet table, nothing indexed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
        return table.reset_index() if not isinstance(table.index, pd.RangeIndex) else table
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    sep = "\t" if first.count("\t") > first.count(",") else ","
    return read_csv_table(path, sep=sep, low_memory=False)
