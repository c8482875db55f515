"""Typed table columns whose errors name the file, the column and the value.

Also the checks every user table passes before pandas sees it (:func:`read_table`,
:func:`check_header`): pandas would silently rename a repeated column (``rin``,
``rin.1``) and fill a truncated last row with NaN; here both are errors naming the file.
"""

from __future__ import annotations

import csv
import numbers
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError

# Text that means "missing" in a number column: pandas' own default missing markers
# (``read_csv``'s ``na_values``, listed in its docstring), so that a table pandas wrote
# (``astype(str)`` turns pd.NA into '<NA>') reads back as missing. Written out, not taken
# from pandas' private parser module; tests/test_adversarial_inputs.py checks it against
# what ``read_csv`` does and documents.
MISSING_TEXT: frozenset[str] = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)


def numeric_values(
    col: pd.Series, name: str, where: str, what: str = "column", row: str = "row"
) -> pd.Series:
    """One column as float64 (NaN = missing), or an :class:`InputError` naming it.

    The one strict reading of a number column (readers' tables and predict's feature
    tables). Numbers pass; text holding numbers passes (a CSV column with one typo is text,
    and the typo is then named); blank cells and pandas' missing markers
    (:data:`MISSING_TEXT`: ``NA``, ``NaN``, ``<NA>``, ``null`` ...) are missing values.
    Rejected by dtype: booleans, dates and durations (a Parquet datetime would otherwise be
    read as nanoseconds since 1970), complex numbers, and Python objects in a text column
    that are neither text nor numbers.

    Parameters
    ----------
    what, row : str
        How the message names the column (``feature column``) and a row (``cell``).
    """
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise InputError(f"{where}: {what} '{name}' is boolean, expected numbers")
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise InputError(f"{where}: {what} '{name}' holds dates/times ({dtype}), expected numbers")
    if pd.api.types.is_complex_dtype(dtype):
        raise InputError(f"{where}: {what} '{name}' is complex ({dtype}), expected numbers")
    if pd.api.types.is_numeric_dtype(dtype):
        return col.astype(float)
    for label, v in col.items():
        if v is None or isinstance(v, str):
            continue
        if isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_):
            continue
        raise InputError(
            f"{where}: value {v!r} of type {type(v).__name__} in {what} '{name}' "
            f"({row} {label}), expected numbers"
        )
    values = pd.to_numeric(col, errors="coerce")
    bad = values.isna() & col.notna() & ~col.astype(str).str.strip().isin(MISSING_TEXT)
    if bad.any():
        label = bad.index[bad.to_numpy()][0]
        raise InputError(
            f"{where}: non-numeric value {col[label]!r} in column '{name}' ({row} {label})"
        )
    return values.astype(float)


def numeric_column(df: pd.DataFrame, column: str, where: str) -> pd.Series:
    """Column ``column`` of ``df`` as float (:func:`numeric_values`)."""
    return numeric_values(df[column], column, where)


def check_unique(index: pd.Index, what: str, where: str) -> None:
    """Raise :class:`InputError` naming the first repeated label of ``index``."""
    if index.has_duplicates:
        dup = index[index.duplicated()][0]
        raise InputError(f"{where}: duplicate {what} {dup!r}")


def id_strings(ids: pd.Series, column: str, where: str) -> pd.Series:
    """Cell ids as text, exactly as written; ids that cannot be exact are errors.

    Text and integers pass (as ``str``). Floats (a Parquet id column written from a
    float array) pass only when every value is a whole number that the float type holds
    exactly (up to 2**53 for float64, 2**24 for float32), and become integer text
    (``557261437.0`` -> ``'557261437'``). A non-integral, too large (digits may already be
    lost: float32 ``557261437`` is ``557261440``) or missing float id is an
    :class:`InputError` naming the column, the row and the value.
    """
    dtype = ids.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise InputError(f"{where}: id column '{column}' is boolean, expected text or integers")
    if pd.api.types.is_float_dtype(dtype):
        values = ids.to_numpy()
        return pd.Series(_float_ids(values, column, where), index=ids.index, dtype=object)
    if pd.api.types.is_object_dtype(dtype):
        floats = [i for i, v in enumerate(ids.array) if isinstance(v, float | np.floating)]
        if floats:
            out = ids.astype(object).copy()
            values = np.asarray([ids.iat[i] for i in floats], dtype=float)
            out.iloc[floats] = _float_ids(values, column, where, rows=floats)
            return out.astype(str)
    return ids.astype(str)


def _float_ids(values: np.ndarray, column: str, where: str, rows=None) -> np.ndarray:
    """Whole-number float ids as integer text, or an error naming the first bad one."""
    exact = 2.0 ** (np.finfo(values.dtype).nmant + 1)  # 2**53 (float64), 2**24 (float32)
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(values) & (np.floor(values) == values)
        ok = whole & (np.abs(values) <= exact)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        row = (rows[i] if rows is not None else i) + 1
        value = float(values[i])
        if np.isnan(value):
            why = "is missing (NaN)"
        elif not whole[i]:
            why = "is not a whole number"
        else:
            why = (
                f"is beyond {exact:,.0f}, the largest whole number {values.dtype} holds "
                "exactly (digits may be lost)"
            )
        raise InputError(
            f"{where}: id column '{column}' is {values.dtype} and its value {value!r} "
            f"(row {row}) {why}; write ids as text or integers"
        )
    return values.astype(np.int64).astype(str)


def _duplicate_names(names, path) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(
                f"{path}: column '{name}' appears more than once in the header (which one "
                "is meant is ambiguous; rename or remove one)"
            )
        if name not in (None, ""):  # unnamed columns (a trailing separator) are no name
            seen.add(name)


def check_header(path: str | os.PathLike, sep: str | None = None) -> bool:
    """Check a table file before pandas reads it: unique column names; in a CSV/TSV also
    every row as many fields as the header (a file cut off mid-write ends in a short row).

    Parquet: the field names as written, and the names pandas gives them (named index
    levels, from the pandas metadata where present). CSV/TSV (``sep``): the header line
    itself, not pandas' renamed ``rin.1``. Blank lines are skipped, as pandas does.

    Rows with more fields than the header: pandas would take the first column as the row
    labels and shift every column by one (the ids become the first feature's values). When
    every data row has extra fields that are all empty (a delimiter at the end of each
    row, as some spreadsheets write), the table is fine without them: returns True, and
    the caller reads it with ``index_col=False`` (pandas then drops them). Extra fields
    with values are an error naming the line.

    Returns
    -------
    bool
        True if every data row ends in empty extra fields (a trailing delimiter).

    Raises
    ------
    InputError
        Naming the file and the repeated column, or the file and the short or long line,
        or a field the ``csv`` module refuses (a stray quote runs a field on).
    """
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
        except Exception:  # noqa: BLE001 - the reader reports an unreadable file itself
            return False
        _duplicate_names(schema.names, path)
        meta = schema.pandas_metadata  # index levels under their pandas names
        if meta:
            _duplicate_names([c.get("name") for c in meta.get("columns", [])], path)
        return False
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=sep or ",")
        try:
            return _check_rows(reader, path)
        except csv.Error as exc:
            raise InputError(
                f"{path}: line {reader.line_num}: unreadable ({exc}; a stray quote '\"' "
                "makes the rest of the file one field: check the quotes)"
            ) from None


def _check_rows(reader, path: Path) -> bool:
    """The row checks of :func:`check_header`; True if every data row has a trailing
    delimiter (only empty extra fields)."""
    header = next(reader, None)
    if header is None:
        return False
    _duplicate_names(header, path)
    n_rows, trailing = 0, 0
    for record in reader:
        if not record:
            continue
        n_rows += 1
        if len(record) < len(header):
            why = (
                "a stray quote '\"' runs a field on over the next lines: check the quotes"
                if any("\n" in field for field in record)
                else "a truncated or damaged row; the file may have been cut off while it "
                "was written"
            )
            raise InputError(
                f"{path}: line {reader.line_num} has {len(record)} field(s), the header "
                f"{len(header)} ({why})"
            )
        if len(record) > len(header):
            if any(field.strip() for field in record[len(header) :]):
                raise InputError(
                    f"{path}: line {reader.line_num} has {len(record)} field(s), the header "
                    f"{len(header)} (a missing column name or a stray delimiter; pandas "
                    "would shift every column by one)"
                )
            trailing += 1
    if trailing and trailing != n_rows:
        raise InputError(
            f"{path}: {trailing} of {n_rows} rows end in an extra delimiter, the others not "
            "(a damaged table; pandas would misread it)"
        )
    return trailing > 0


def read_csv_table(path, **kwargs) -> pd.DataFrame:
    """``pandas.read_csv`` whose parse failures are one :class:`InputError` naming ``path``."""
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: unreadable CSV ({exc})") from None


def csv_separator(path: str | os.PathLike) -> str:
    """Tab if the header line has more tabs than commas, else comma."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    return "\t" if first.count("\t") > first.count(",") else ","


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV/TSV (separator from the header line) or Parquet table, nothing indexed.

    The file passes :func:`check_header` first (no repeated column, no short row).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    if path.suffix == ".parquet":
        check_header(path)
        table = pd.read_parquet(path)
        return table.reset_index() if not isinstance(table.index, pd.RangeIndex) else table
    sep = csv_separator(path)
    if check_header(path, sep):
        warn_trailing_delimiter(path, sep)
        return read_csv_table(path, sep=sep, low_memory=False, index_col=False)
    return read_csv_table(path, sep=sep, low_memory=False)


def warn_trailing_delimiter(path, sep: str) -> None:
    """The one warning line of a table whose rows all end in a delimiter (read without the
    empty last field, not shifted: :func:`check_header`)."""
    import logging

    name = "tab" if sep == "\t" else repr(sep)
    logging.getLogger("ephys2expr").warning(
        "%s: every data row ends in an extra %s (one more field than the header); read "
        "without it, columns as the header names them. Remove the trailing delimiter to "
        "silence this",
        path,
        name,
    )
