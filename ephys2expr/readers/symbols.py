"""Gene symbols: undo R's ``make.names`` mangling with a list of true symbols."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
