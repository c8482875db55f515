"""Batch alignment and known classes in a prediction (``predict.align``, ``known_class``).

Each batch of an input (its ``batch`` column; without one the whole table is one batch) is
aligned onto the store's training cells by :func:`ephys2expr.identity.align.fit_alignment`
over the families' class-conditional Gaussians of the store's training rows, and its
aligned features feed the identity classifiers and the expression models (the OOD score
stays that of the features as given: it says how far the cells were from the training
cells). ``auto`` without a known class first tests whether the batch holds both Exc and Inh
cells (:func:`ephys2expr.identity.align.composition_test`, logged) and aligns only mixed
batches; cells of an aligned batch that measured fewer features get their own shift when
there are enough of them (:func:`ephys2expr.identity.align.fit_parts`, one log line
each). A known class (``known_class`` column per cell, or the ``predict.known_class``
setting for the cells without one) restricts the alignment and the reported family and type
probabilities to the compatible families (:func:`ephys2expr.identity.align.allowed_families`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ephys2expr.identity.align import (
    MIN_CELLS,
    ClassGaussians,
    allowed_families,
    fit_alignment,
)
from ephys2expr.identity.temper import cell_temperatures, temperature
from ephys2expr.model.store import ModelStore
from ephys2expr.predict.identity import identity_outputs

log = logging.getLogger("ephys2expr.predict")

BATCH_COLUMN = "batch"
KNOWN_COLUMN = "known_class"


def family_gaussians(store: ModelStore) -> ClassGaussians | None:
    """The families' Gaussians of the store's training rows (None without training rows,
    families or identity classifiers: a type-mean store is not aligned)."""
    types = store.train_types
    if (
        store.identity is None
        or store.train_features is None
        or types is None
        or "family" not in types.columns
    ):
        return None
    classes = store.identity.classifiers[store.feature_set]["family"].classes
    X = store.train_features[store.features].to_numpy(dtype=float)
    return ClassGaussians.fit(X, types["family"].astype(str).to_numpy(), store.features, classes)


def known_values(meta: pd.DataFrame, default: str) -> np.ndarray:
    """Per cell its known class: the ``known_class`` column, else ``default`` ('' = none)."""
    if KNOWN_COLUMN not in meta.columns:
        return np.full(len(meta), default, dtype=object)
    return np.array(
        [
            str(v).strip() if not pd.isna(v) and str(v).strip() else default
            for v in meta[KNOWN_COLUMN]
        ],
        dtype=object,
    )


def _cells_features(store: ModelStore, X: np.ndarray, cell_sets) -> np.ndarray:
    """``X`` with NaN where a feature is not in the cell's feature set (filled values)."""
    out = np.array(X, dtype=float, copy=True)
    if cell_sets is None:
        return out
    for s, model in enumerate(store.feature_sets.values()):
        rows = np.asarray(cell_sets) == s
        unused = [j for j, f in enumerate(store.features) if f not in model.features]
        if rows.any() and unused:
            out[np.ix_(rows, unused)] = np.nan
    return out


def align_cells(
    store: ModelStore,
    X: np.ndarray,
    cell_sets,
    meta: pd.DataFrame,
    method: str,
    known_default: str,
    name: str,
    min_cells: int = MIN_CELLS,
    temper: bool = True,
) -> tuple:
    """Align each batch of the predicted cells; returns ``(X, allowed, report, T)``.

    ``X``: the cells' features aligned (unchanged where nothing was aligned); ``allowed``:
    cells x families bool (None when no cell has a known class); ``report``: per batch the
    alignment's :meth:`~ephys2expr.identity.align.Alignment.report` (empty for a store that
    cannot be aligned); ``T``: per cell its alignment's temperature (:func:`_temper_batch`).
    """
    model = family_gaussians(store)
    if model is None:
        if method not in ("none", "auto") or known_default or KNOWN_COLUMN in meta.columns:
            log.info(
                "%s: not aligned and no known class applied: the model store has no "
                "identity classifiers (a type-mean store)",
                name,
            )
        return X, None, {}, np.ones(len(X))
    known = known_values(meta, known_default)
    allowed = None
    if (known != "").any():
        allowed = np.vstack([allowed_families(k, model.classes, where=name) for k in known])
    batches = (
        meta[BATCH_COLUMN].astype(str).to_numpy()
        if BATCH_COLUMN in meta.columns
        else np.full(len(meta), "")
    )
    raw = _cells_features(store, X, cell_sets)
    out = np.array(X, dtype=float, copy=True)
    report = {}
    T = np.ones(len(X))
    for b in pd.unique(batches):
        rows = batches == b
        ok = None if allowed is None else allowed[rows]
        al = fit_alignment(raw[rows], store.features, model, method, ok, min_cells)
        aligned = al.apply(raw[rows], store.features, model)
        out[rows] = np.where(np.isnan(raw[rows]), X[rows], aligned)
        label = f"{name}" + (f" batch {b}" if b else "")
        report[b or "all"] = al.report()
        T[rows] = _temper_batch(report[b or "all"], al, raw[rows], store.features, temper, label)
        if al.fitted:
            log.info(
                "%s: aligned (%s, %d cells, %d EM iterations%s); largest shifts in training SD: %s",
                label,
                al.method,
                al.n_cells,
                al.n_iter,
                "" if al.converged else ", not converged",
                al.largest_text(),
            )
            for part in al.parts:
                log.info(
                    "%s: %d %s aligned on their own; largest shifts: %s",
                    label,
                    part.n_cells,
                    part.reason,
                    part.largest_text(),
                )
        else:
            log.info("%s: not aligned (%s)", label, al.reason)
        if al.composition_test:
            log.info(
                "%s: composition test %s (two modes on the Exc/Inh axis beat one by BIC "
                "%.1f, the smaller holds %.0f %% of the cells)",
                label,
                "mixed" if al.composition_test["mixed"] else "one class",
                al.composition_test["delta_bic"],
                100 * al.composition_test["minor_share"],
            )
    return out, allowed, report, T


def _temper_batch(report: dict, al, X, features, temper: bool, label: str) -> np.ndarray:
    """Per cell of the batch ``X`` its temperature (all 1 without ``temper``); the batch's
    (and each part's) into its ``report``, one log line when it is above 1."""
    if not temper:
        report["temperature"] = 1.0
        for part in al.parts:
            report["parts"][part.reason]["temperature"] = 1.0
        return np.ones(len(X))
    report["temperature"] = round(temperature(al.shift, al.fitted), 4)
    for part in al.parts:
        report["parts"][part.reason]["temperature"] = round(temperature(part.shift, part.fitted), 4)
    if report["temperature"] > 1:
        log.info(
            "%s: identity probabilities tempered by the shift, T = %.2f (predict.temper)",
            label,
            report["temperature"],
        )
    return cell_temperatures(al, X, features)


def aligned_identity(store: ModelStore, item, settings):
    """``(X, meta, obsm, alignment)`` of one input's predicted cells (``item``: its
    :class:`~ephys2expr.predict.inputs.cells.CellInput`): the features aligned by batch
    (:func:`align_cells`, ``settings.align`` and ``settings.known_class``), its ``kept_meta``
    with the identity obs joined (per-cell stores of model mixture / best: family, type
    and their probabilities, restricted to the known classes) and the obsm tables."""
    screen, meta = item.screen, item.kept_meta
    X, allowed, alignment, T = align_cells(
        store,
        screen.X,
        screen.cell_sets,
        meta,
        settings.align,
        settings.known_class,
        item.name,
        temper=settings.temper,
    )
    ident, obsm = identity_outputs(store, X, screen.cell_sets, meta.index, allowed, T)
    return X, meta if ident is None else meta.join(ident), obsm, alignment


__all__ = [
    "BATCH_COLUMN",
    "KNOWN_COLUMN",
    "align_cells",
    "aligned_identity",
    "family_gaussians",
    "known_values",
]
