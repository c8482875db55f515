"""Transfer to other labs: the per-cell store's identity on every labelled foreign set
(:mod:`ephys2expr.validate.transfer.sets`), with and without batch alignment, with and
without the known class (issue #30).

Each set is one batch, aligned by :func:`ephys2expr.identity.align.fit_alignment` onto the
families' Gaussians of the store's training rows by each of :data:`METHODS` (``auto``: the
composition test, then ``em_zscore`` for a mixed batch; ``em_pooled`` within a known
class); every cell is classified by the store's first feature set whose features it has
(the full set first). Measured: Exc/Inh agreement, family agreement where a family is
expected (``_psv``: on the Pvalb/Sst/Vip-line cells only; ``_complete`` / ``_incomplete``:
cells with every feature or not), the family ECE of those cells (a top family in the
expected set counts as right), the share flagged ``ood`` and the three largest shifts.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ephys2expr.identity.align import EXC_FAMILIES, allowed_families, fit_alignment
from ephys2expr.identity.scores import expected_calibration_error
from ephys2expr.identity.temper import cell_temperatures, temper
from ephys2expr.model.store import ModelStore
from ephys2expr.predict.align import family_gaussians
from ephys2expr.predict.identity import restrict
from ephys2expr.predict.inputs.screen import CellScreen
from ephys2expr.predict.intervals import has_intervals, interval_bounds, interval_terms
from ephys2expr.validate.transfer.sets import PSV_LINES, TransferSet

log = logging.getLogger("ephys2expr.validate")

METHODS = ("none", "zscore", "em_shift", "em_mixed", "em_pooled", "em_zscore", "auto")


def _family_proba(store: ModelStore, X: pd.DataFrame) -> pd.DataFrame:
    """Family probabilities of the cells of ``X`` by the first set whose features they have."""
    out, done = [], pd.Series(False, index=X.index)
    for model in store.feature_sets.values():
        rows = X.index[~done & X[model.features].notna().all(axis=1)]
        if len(rows):
            out.append(model.identity_probabilities(X.loc[rows, model.features])["family"])
            done[rows] = True
    return pd.concat(out).reindex(X.index[done]) if out else pd.DataFrame()


def score_set(
    store: ModelStore, model, s: TransferSet, method: str, known: bool, min_cells: int
) -> dict:
    """One row of the transfer table: one set, method and known-class choice."""
    feats = store.features
    X = s.cells.reindex(columns=feats).astype(float)
    allowed = np.vstack([allowed_families(k, model.classes) for k in s.known]) if known else None
    al = fit_alignment(X.to_numpy(), feats, model, method, allowed, min_cells)
    Xa = pd.DataFrame(al.apply(X.to_numpy(), feats, model), index=X.index, columns=feats)
    proba = _family_proba(store, Xa)
    if proba.empty:  # no cell has the features of a stored set
        return {
            "n_cells": int(len(X)),
            "n_classified": 0,
            "aligned": al.fitted,
            "converged": al.converged,
        }
    pos = X.index.get_indexer(proba.index)
    if known:
        tables = {"family": proba}
        restrict(store, tables, allowed[pos])
        proba = tables["family"]
    fam = proba.idxmax(axis=1).to_numpy()
    T = cell_temperatures(al, X.to_numpy(), feats)[pos]  # identity/temper.py
    truth, expected = s.truth[pos], [s.expected[i] for i in pos]
    pred = np.where(np.isin(fam, EXC_FAMILIES), "Exc", "Inh")
    scored = truth != ""
    has = np.array([bool(e) for e in expected])
    hit = np.array([f in e for f, e in zip(fam, expected, strict=True)])
    psv = np.array([s.cre and tuple(e) in PSV_LINES for e in expected], dtype=bool)
    row = {
        "n_cells": int(len(X)),
        "n_classified": int(len(proba)),
        "exc_inh_agreement": float((pred == truth)[scored].mean()) if scored.any() else None,
        "n_family_known": int(has.sum()),
        "family_agreement": float(hit[has].mean()) if has.any() else None,
        "family_agreement_psv": float(hit[psv].mean()) if psv.any() else None,
        "family_ece": _top_ece(proba.to_numpy()[has], hit[has]),
        "temperature": float(T.mean()),
        "family_ece_tempered": _top_ece(temper(proba.to_numpy()[has], T[has]), hit[has]),
        "aligned": al.fitted,
        "converged": al.converged,
        "mixed": al.composition_test.get("mixed"),
        "largest_shifts": al.largest_text(),
    }
    complete = X.notna().all(axis=1).to_numpy()[pos]
    return row | _by_completeness(complete, pred == truth, scored, hit, psv)


def _by_completeness(complete, right, scored, hit, psv) -> dict:
    """Exc/Inh and Pvalb/Sst/Vip-line agreement of the cells with every feature and of
    those without (a smaller set, a sub-batch): where agreement is lost (docs/transfer.md)."""
    out = {"n_incomplete": int((~complete).sum())}
    for label, rows in (("complete", complete), ("incomplete", ~complete)):
        ei, fam = rows & scored, rows & psv
        out[f"exc_inh_agreement_{label}"] = float(right[ei].mean()) if ei.any() else None
        out[f"family_agreement_psv_{label}"] = float(hit[fam].mean()) if fam.any() else None
    return out


def _top_ece(proba: np.ndarray, hit: np.ndarray) -> float | None:
    """ECE of the top class's probability (``hit``: the top class is right); None without
    cells."""
    if not len(proba):
        return None
    top = np.column_stack([proba.max(axis=1), np.zeros(len(proba))])
    return expected_calibration_error(top, np.where(hit, 0, 1))


def cadwell_coverage(store: ModelStore, cadwell, level: float = 0.9) -> pd.DataFrame | None:
    """Share of Cadwell's measured (gene, cell) values inside the store's ``level``
    intervals (its genes measured by Cadwell; each cell by the store's Cadwell feature set),
    without alignment, with ``auto`` (nothing known) and with ``auto`` and known class Inh."""
    feats, names = store.features, list(store.feature_sets)
    if "cadwell" not in names or not has_intervals(store):
        return None
    model = family_gaussians(store)
    s = names.index("cadwell")
    genes = [g for g in store.gene_names if g in cadwell.expr.columns]
    gidx = np.array([store.gene_names.index(g) for g in genes])
    X = cadwell.features.reindex(columns=feats).astype(float).to_numpy()
    measured = cadwell.expr.loc[cadwell.features.index, genes].to_numpy(dtype=float).T
    allowed = np.tile(allowed_families("Inh", model.classes), (len(X), 1))
    rows = []
    for label, method, ok in (
        ("none", "none", None),
        ("auto", "auto", None),
        ("auto, known Inh", "auto", allowed),
    ):
        Xa = fit_alignment(X, feats, model, method, ok).apply(X, feats, model)
        sub = store.model("cadwell")
        pred = sub.predict(Xa[:, [feats.index(f) for f in sub.features]], gidx).T
        lo, hi = interval_bounds(interval_terms(store, gidx, level), Xa, np.full(len(X), s), pred)
        inside = (measured >= lo) & (measured <= hi)
        width = hi.astype(float) - lo.astype(float)
        rows.append(
            {
                "alignment": label,
                "n_cells": len(X),
                "n_genes": len(genes),
                "coverage": float(inside.mean()),
                "median_width": float(np.nanmedian(width)),
            }
        )
    return pd.DataFrame(rows)


def ood_share(store: ModelStore, s: TransferSet, ood_neighbors: int, ood_percentile: float):
    """Share of the set's predictable cells flagged ``ood`` (features as given)."""
    screen = CellScreen("feature_set", 0.1, ood_neighbors, ood_percentile, 5).fit(store)
    res = screen.transform(s.cells.reindex(columns=store.features).astype(float))
    flags = res.flags.loc[res.kept]
    return float(flags["ood"].mean()) if len(flags) else None


def transfer_table(
    store: ModelStore, sets: dict, min_cells: int = 20, ood: tuple = (5, 99.0)
) -> pd.DataFrame:
    """Rows (set, method, known) x the scores of :func:`score_set` and ``ood_share``."""
    model = family_gaussians(store)
    rows = []
    for name, s in sets.items():
        share = ood_share(store, s, *ood)
        for method in METHODS:
            for known in (False, True):
                row = score_set(store, model, s, method, known, min_cells)
                rows.append(
                    {"set": name, "method": method, "known_class": known, "ood_share": share, **row}
                )
        got = {
            (x["method"], x["known_class"]): x["exc_inh_agreement"]
            for x in rows
            if x["set"] == name
        }
        log.info(
            "transfer %s: %d cells, Exc/Inh agreement none %.3f, auto %.3f, auto with "
            "known class %.3f",
            name,
            len(s.cells),
            got[("none", False)],
            got[("auto", False)],
            got[("auto", True)],
        )
    return pd.DataFrame(rows)


def transfer_summary(table: pd.DataFrame) -> dict:
    """Headline numbers: Allen Exc/Inh agreement (auto, nothing known), the largest loss of a
    one-class set's correct share under auto without a known class, the Allen interneuron
    family agreement and ECE with the known class (untempered and tempered)."""
    t = table.set_index(["set", "method", "known_class"])
    allen = [s for s in ("allen_v6", "allen_v10") if (s, "auto", False) in t.index]
    aspiny = [f"{s}_aspiny" for s in allen if (f"{s}_aspiny", "auto", True) in t.index]
    one = [s for s in table["set"].unique() if not s.startswith("allen")]
    loss = [
        t.loc[(s, "none", False), "exc_inh_agreement"]
        - t.loc[(s, "auto", False), "exc_inh_agreement"]
        for s in one
    ]
    r = lambda v: None if v is None or pd.isna(v) else round(float(v), 4)  # noqa: E731

    def mean(sets, known: bool, column: str):
        """The mean of ``column`` over ``sets`` aligned by ``auto`` (None without sets)."""
        return r(np.mean([t.loc[(s, "auto", known), column] for s in sets])) if sets else None

    return {
        "allen_exc_inh_auto": mean(allen, False, "exc_inh_agreement"),
        "one_class_worst_loss_auto": r(max(loss)) if loss else None,
        "one_class_min_share_known": r(
            min(t.loc[(s, "auto", True), "exc_inh_agreement"] for s in one)
        )
        if one
        else None,
        "allen_family_agreement_known": mean(allen, True, "family_agreement"),
        "allen_family_ece_known": mean(allen, True, "family_ece"),
        "allen_family_ece_known_tempered": mean(allen, True, "family_ece_tempered"),
        "allen_aspiny_psv_agreement_known": mean(aspiny, True, "family_agreement_psv"),
    }


def transfer_figure(table: pd.DataFrame):
    """Per set and method: Exc/Inh agreement with nothing known of the batch (left), and the
    family agreement of the cells with an expected family given their known class (right:
    with the class known the Exc/Inh call is right by construction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(table["set"]))
    # the Allen sets by their Pvalb/Sst/Vip-line cells (the measure), others by all
    table = table.assign(
        family_shown=table["family_agreement_psv"].fillna(table["family_agreement"])
    )
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    width = 0.8 / len(METHODS)
    panels = (
        (False, "exc_inh_agreement", "Exc/Inh agreement, nothing known of the batch"),
        (True, "family_shown", "family agreement, known class given (Allen: Pvalb/Sst/Vip lines)"),
    )
    for ax, (known, col, title) in zip(axes, panels, strict=True):
        for i, m in enumerate(METHODS):
            sub = table[(table["method"] == m) & (table["known_class"] == known)].set_index("set")
            ax.bar(
                np.arange(len(sets)) + i * width,
                sub.reindex(sets)[col].astype(float),
                width,
                label=m,
            )
        ax.set_xticks(np.arange(len(sets)) + 0.4 - width / 2, sets, rotation=30, ha="right")
        ax.axhline(0.92 if not known else 0.85, color="grey", lw=0.8, ls="--")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("share of cells")
    axes[1].legend(title="align", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(
        "The per-cell store on other labs' cells (dashed: the issue #30 targets; "
        "no bar: not known for that set)",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


__all__ = [
    "METHODS",
    "cadwell_coverage",
    "score_set",
    "transfer_figure",
    "transfer_summary",
    "transfer_table",
]
