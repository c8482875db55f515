"""Gene symbols: undo R's ``make.names`` mangling, map Entrez IDs, filter genes."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError

_INVALID = re.compile(r"[^A-Za-z0-9._]")
_R_RESERVED = {
    "if",
    "else",
    "repeat",
    "while",
    "function",
    "for",
    "next",
    "break",
    "TRUE",
    "FALSE",
    "NULL",
    "Inf",
    "NaN",
    "NA",
    "NA_integer_",
    "NA_real_",
    "NA_character_",
    "in",
}


def r_make_names(name: str) -> str:
    """R's ``make.names`` for one string (without ``unique=TRUE``).

    Invalid characters become ``.``; an ``X`` is prefixed when the name does not start
    with a letter, or starts with a dot followed by a digit; reserved words get a ``.``.
    """
    out = _INVALID.sub(".", name)
    if not out or not (out[0].isalpha() or out[0] == ".") or re.match(r"^\.[0-9]", out):
        out = "X" + out
    if out in _R_RESERVED:
        out += "."
    return out


@dataclass
class SymbolRestoration:
    """What :func:`restore_symbols` did."""

    symbols: list[str]
    n_restored: int  # names changed back to a true symbol
    n_unchanged: int  # names that make.names leaves as they are (already true symbols)
    unresolved: list[str]  # names that look mangled but match no reference symbol


def restore_symbols(names: list[str], reference_symbols: list[str]) -> SymbolRestoration:
    """Map names mangled by R's ``make.names(unique=TRUE)`` back to true symbols.

    ``make.names`` is not invertible on its own (``.`` may have been ``-``, ``/``, a
    space...), so a name is restored only when it is certain:

    1. a name equal to a reference symbol is kept;
    2. a name equal to the mangled form of exactly one unused reference symbol
       becomes that symbol (``Nkx2.1`` -> ``Nkx2-1``, ``X0610009B22Rik`` ->
       ``0610009B22Rik``);
    3. otherwise a leading ``X`` before a digit is dropped (R adds it to names that
       start with a digit; no mouse symbol starts with X + digit);
    4. a name still containing ``.`` is kept but reported as unresolved;
    5. any other name is already valid in R and kept.

    Restored names never collide with names already present.
    """
    reference = set(reference_symbols)
    by_mangled: dict[str, list[str]] = {}
    for sym in reference_symbols:
        mangled = r_make_names(sym)
        if mangled != sym:
            by_mangled.setdefault(mangled, []).append(sym)
    taken = set(names)
    out, restored, unchanged, unresolved = [], 0, 0, []
    for name in names:
        candidates = [c for c in by_mangled.get(name, []) if c not in taken]
        if name in reference:
            out.append(name)
            unchanged += 1
        elif len(candidates) == 1:
            out.append(candidates[0])
            taken.add(candidates[0])
            restored += 1
        elif re.match(r"^X[0-9]", name) and name[1:] not in taken:
            out.append(name[1:])
            taken.add(name[1:])
            restored += 1
        elif "." in name:
            out.append(name)
            unresolved.append(name)
        else:
            out.append(name)
            unchanged += 1
    return SymbolRestoration(out, restored, unchanged, unresolved)


def read_entrez_symbols(path) -> pd.Series:
    """Entrez Gene ID (int) -> symbol, from a two-column headerless CSV."""
    try:
        table = pd.read_csv(path, header=None, names=["entrez", "symbol"], dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: unreadable CSV ({exc})") from None
    ids = pd.to_numeric(table["entrez"], errors="coerce")
    if ids.isna().any():
        bad = table.loc[ids.isna(), "entrez"].iloc[0]
        raise InputError(f"{path}: non-numeric Entrez ID {bad!r} in column 1")
    if ids.duplicated().any():
        raise InputError(f"{path}: duplicate Entrez ID {int(ids[ids.duplicated()].iloc[0])}")
    return pd.Series(table["symbol"].to_numpy(), index=ids.astype(np.int64).to_numpy())


@dataclass
class GeneFilterReport:
    n_genes_in: int
    n_after_zero_variance: int
    n_after_min_expression: int
    n_after_top_variable: int


def filter_genes(
    targets: pd.DataFrame,
    min_max_log2: float = 0.0,
    top_variable: int = 0,
    where: str = "training targets",
) -> tuple[pd.DataFrame, GeneFilterReport]:
    """Filter a genes x types log2 expression table.

    Steps: drop genes with zero variance across types (nothing to predict); keep genes
    whose largest type mean is >= ``min_max_log2``; keep the ``top_variable`` most
    variable genes (0 = all; ties broken by gene order, so the result is deterministic).
    """
    n_in = len(targets)
    values = targets.to_numpy(dtype=float)
    keep = np.nanvar(values, axis=1) > 0
    n_var = int(keep.sum())
    keep &= np.nanmax(values, axis=1) >= min_max_log2
    n_min = int(keep.sum())
    out = targets[keep]
    if top_variable and top_variable > 0 and len(out) > top_variable:
        var = out.var(axis=1, ddof=0).to_numpy()
        order = np.argsort(-var, kind="stable")[:top_variable]
        out = out.iloc[np.sort(order)]
    if len(out) == 0:
        raise InputError(
            f"{where}: no gene left after filtering (zero variance -> {n_var}, "
            f"min_max_log2={min_max_log2} -> {n_min}, top_variable={top_variable})"
        )
    return out, GeneFilterReport(n_in, n_var, n_min, len(out))
