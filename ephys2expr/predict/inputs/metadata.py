"""Per-cell metadata carried from an input table to the predictions, and its species.

The species a table names in its own words (``Mus musculus``), normalised; the option
``--species`` for cells without one; and the cells of another species than the model
store's (obs ``species_mismatch``, one warning line).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError

log = logging.getLogger("ephys2expr.predict")

# Per-cell metadata carried from the input to the output when present (CONTRIBUTING.md).
METADATA_COLUMNS: list[str] = [
    "cre_line",
    "layer",
    "dendrite_type",
    "species",
    "brain_region",
    "batch",
    "known_class",
]
_SPECIES_ALIASES = {
    "mus musculus": "mouse",
    "mouse": "mouse",
    "homo sapiens": "human",
    "human": "human",
}


def normalise_species(name: str) -> str:
    """``mouse``/``human`` for the ways tables spell them (Allen: ``Mus musculus``, ``Homo
    Sapiens``), any other name lower case."""
    name = str(name).strip().lower()
    return _SPECIES_ALIASES.get(name, name)


def cell_metadata(
    cells: pd.DataFrame, species: str | None = None, where: str = "cells"
) -> pd.DataFrame:
    """The metadata columns present in ``cells`` (strings, ``None`` where unknown).

    ``species`` is normalised (:func:`normalise_species`), the column's values and the
    ``species`` argument (the ``--species`` option) alike. The option gives the species of
    cells whose column is empty, or of every cell when there is no column; an option that
    contradicts a cell's own species is an error naming ``where`` (not silently ignored).
    Cells of no known species are ``"unknown"``.
    """
    meta = pd.DataFrame(index=cells.index)
    for col in METADATA_COLUMNS:
        if col in cells.columns:
            values = cells[col].astype("string").str.strip()
            meta[col] = values.mask(values == "").astype(object).where(values.notna(), None)
    given = normalise_species(species) if species is not None and str(species).strip() else None
    if "species" in meta.columns:
        own = [normalise_species(s) if s is not None else None for s in meta["species"]]
        other = sorted({s for s in own if s is not None and given is not None and s != given})
        if other:
            n = sum(s in other for s in own)
            raise InputError(
                f"{where}: --species {given} contradicts its 'species' column ({n} cell(s) say "
                f"{'/'.join(other)}); --species only fills cells without one"
            )
        meta["species"] = [s if s is not None else (given or "unknown") for s in own]
    else:
        meta["species"] = given or "unknown"
    return meta


def species_mismatch(species: pd.Series, store_species: str) -> np.ndarray:
    """Per cell: its species is known and not one the store was trained on.

    ``store_species`` is the store's ``provenance["species"]`` (``mouse``; several joined by
    ``,``); a store that does not know its species (``unknown``, stores of older versions)
    flags nothing, and neither do cells of unknown species."""
    trained = {s for s in str(store_species).split(",") if s and s != "unknown"}
    if not trained:
        return np.zeros(len(species), dtype=bool)
    known = species.astype(str).to_numpy()
    return (known != "unknown") & ~np.isin(known, sorted(trained))


def warn_species(name: str, meta: pd.DataFrame, kept: np.ndarray, store_species: str) -> None:
    """ONE warning line when predicted cells are of another species than the store's."""
    flagged = meta["species_mismatch"].to_numpy() & kept
    if flagged.any():
        other = sorted(set(meta.loc[flagged, "species"]))
        log.warning(
            "%s: %d of %d predicted cells are %s but the model store was trained on %s "
            "cells; their predictions cross species (obs 'species_mismatch')",
            name,
            int(flagged.sum()),
            int(kept.sum()),
            "/".join(other),
            store_species,
        )


__all__ = [
    "METADATA_COLUMNS",
    "cell_metadata",
    "normalise_species",
    "species_mismatch",
    "warn_species",
]
