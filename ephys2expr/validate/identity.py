"""Do the per-cell store's predicted families of the Allen cells agree with what is known?

The Allen cells carry no transcriptomic label, but their Cre line and dendrite type say a
lot: spiny cells are excitatory (families IT, ET, CT, NP), aspiny ones inhibitory; an
aspiny cell of Pvalb-IRES-Cre should be Pvalb, of Sst-IRES-Cre Sst, of Vip-IRES-Cre or
Chat-IRES-Cre Vip (or Sncg), of Htr3a-Cre or Ndnf-Cre a CGE family (Lamp5, Vip, Sncg)
(:func:`ephys2expr.taxonomy.cre_group`, :func:`~ephys2expr.taxonomy.exc_inh_truth`). Each
cell is classified by the store's first feature set whose features it has (the full set
first), as its own classifier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ephys2expr.model.store import ModelStore
from ephys2expr.taxonomy import cre_group, exc_inh_truth

EXC_FAMILIES = ("IT", "ET", "CT", "NP", "L6b")
# families consistent with each interneuron cre group (Htr3a lines: the CGE families)
EXPECTED = {
    "Pvalb": {"Pvalb"},
    "Sst": {"Sst"},
    "Vip": {"Vip", "Sncg"},
    "Ndnf": {"Lamp5", "Vip", "Sncg"},
}


def allen_families(store: ModelStore, cells: pd.DataFrame) -> pd.DataFrame:
    """Per Allen cell with the features of some feature set: ``family``,
    ``family_probability``, ``feature_set``, ``expected_class`` (Exc/Inh or ""),
    ``cre_group``, and the cell's ``cre_line`` and ``dendrite_type``."""
    out = []
    done = pd.Series(False, index=cells.index)
    for name, model in store.feature_sets.items():
        rows = cells.index[~done & cells[model.features].notna().all(axis=1)]
        if not len(rows):
            continue
        proba = model.identity_probabilities(cells.loc[rows, model.features])["family"]
        out.append(
            pd.DataFrame(
                {
                    "family": proba.idxmax(axis=1),
                    "family_probability": proba.max(axis=1),
                    "feature_set": name,
                },
                index=rows,
            )
        )
        done[rows] = True
    res = pd.concat(out).reindex(cells.index[done])
    meta = cells.loc[res.index]
    res["cre_line"] = meta["cre_line"].astype(str)
    res["dendrite_type"] = meta["dendrite_type"].astype(str)
    res["expected_class"] = [
        exc_inh_truth(c, d) for c, d in zip(meta["cre_line"], meta["dendrite_type"], strict=True)
    ]
    trio = zip(meta["cre_line"], meta["layer"], meta["dendrite_type"], strict=True)
    res["cre_group"] = [cre_group(c, lay, d) for c, lay, d in trio]
    return res


def family_agreement(cells: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """``(table, summary)``: predicted family counts per Cre line x dendrite type with the
    share that agrees with what is known of them, and the overall shares."""
    predicted_class = np.where(cells["family"].isin(EXC_FAMILIES), "Exc", "Inh")
    scored = cells["expected_class"] != ""
    class_ok = predicted_class == cells["expected_class"]
    inh_group = cells["cre_group"].isin(list(EXPECTED)) & (cells["expected_class"] == "Inh")
    fam_ok = np.array(
        [f in EXPECTED.get(g, ()) for f, g in zip(cells["family"], cells["cre_group"], strict=True)]
    )
    counts = pd.crosstab([cells["cre_line"], cells["dendrite_type"]], cells["family"])
    key = [cells["cre_line"], cells["dendrite_type"]]
    frame = pd.DataFrame(
        {
            "class_ok": class_ok & scored,
            "scored": scored,
            "fam_ok": fam_ok & inh_group,
            "inh_group": inh_group,
        }
    )
    sums = frame.groupby(key).sum()
    table = counts.copy()
    table.insert(0, "n_cells", counts.sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        table["class_agreement"] = (sums["class_ok"] / sums["scored"]).round(4)
        table["family_agreement"] = (sums["fam_ok"] / sums["inh_group"]).round(4)
    table = table.sort_values("n_cells", ascending=False)
    summary = {
        "n_cells": int(len(cells)),
        "class_agreement": round(float(class_ok[scored].mean()), 4),
        "n_class_scored": int(scored.sum()),
        "interneuron_family_agreement": round(float(fam_ok[inh_group].mean()), 4),
        "n_interneuron_line_cells": int(inh_group.sum()),
        "by_cre_group": {
            g: round(float(fam_ok[(cells["cre_group"] == g) & inh_group].mean()), 4)
            for g in EXPECTED
            if ((cells["cre_group"] == g) & inh_group).any()
        },
        "median_family_probability": round(float(cells["family_probability"].median()), 4),
        "feature_sets": {k: int(v) for k, v in cells["feature_set"].value_counts().items()},
    }
    return table, summary


def family_agreement_figure(table: pd.DataFrame, summary: dict, min_cells: int = 10):
    """Shares of predicted families per Cre line x dendrite type (rows with at least
    ``min_cells`` cells), the agreement shares in the row labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = [c for c in table.columns if c not in ("n_cells", "class_agreement", "family_agreement")]
    rows = table[table["n_cells"] >= min_cells]
    share = rows[fams].div(rows["n_cells"], axis=0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(fams), 1.5 + 0.32 * len(rows)))
    ax.imshow(share.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    labels = []
    for (cre, dend), r in rows.iterrows():
        fam = "" if np.isnan(r["family_agreement"]) else f", family {r['family_agreement']:.2f}"
        labels.append(
            f"{cre} ({dend}, n={int(r['n_cells'])}): class {r['class_agreement']:.2f}{fam}"
        )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xticks(range(len(fams)))
    ax.set_xticklabels(fams, rotation=90)
    for i in range(len(rows)):
        for j in range(len(fams)):
            v = share.iat[i, j]
            if v >= 0.05:
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="w" if v < 0.5 else "k",
                )
    ax.set_xlabel("predicted family (per-cell store's classifier)")
    ax.set_title(
        f"Allen cells: Exc/Inh agreement {summary['class_agreement']:.2f} "
        f"(n={summary['n_class_scored']}); interneuron-line family agreement "
        f"{summary['interneuron_family_agreement']:.2f} (n={summary['n_interneuron_line_cells']})",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


__all__ = ["EXC_FAMILIES", "allen_families", "family_agreement", "family_agreement_figure"]
