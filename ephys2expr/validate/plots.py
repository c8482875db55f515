"""Figures of the ``validate`` stage: embeddings, type agreement heatmap, Patch-seq panels.

:func:`validation_figures` makes every figure the stage writes (``plots/validate/<name>.png``)
with its title; the functions above it draw one kind of figure each.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ephys2expr.validate.agreement import TypeAgreement  # noqa: E402
from ephys2expr.validate.patchseq.cadwell import PatchSeqResult  # noqa: E402

GREY = "#BBBBBB"
EXC_INH_COLOURS = {"Exc": "#D62728", "Inh": "#1F77B4", "unknown": GREY}
SOURCE_COLOURS = {"predicted": "#FF7F0E", "measured": "#2CA02C"}
SOURCE_MARKERS = {"predicted": "o", "measured": "^"}


def categorical_colours(values: pd.Series, palette: dict[str, str] | None = None) -> dict:
    """Colour per category: from ``palette`` when given (missing -> grey), else tab20."""
    cats = sorted({str(v) for v in values.dropna()})
    if palette is not None:
        return {c: palette.get(c, GREY) for c in cats}
    cmap = plt.get_cmap("tab20")
    return {c: matplotlib.colors.to_hex(cmap(i % 20)) for i, c in enumerate(cats)}


def _scatter(ax, xy, labels, colours, markers=None, title="", max_legend=24, s=6):
    labels = pd.Series(labels).fillna("unknown").astype(str).to_numpy()
    order = sorted(set(labels), key=lambda c: (c == "unknown", c))
    marker_arr = np.asarray(markers) if markers is not None else np.full(len(labels), "o")
    for c in order:
        m = labels == c
        for mk in np.unique(marker_arr[m]):
            mm = m & (marker_arr == mk)
            ax.scatter(
                xy[mm, 0],
                xy[mm, 1],
                s=s,
                c=colours.get(c, GREY),
                marker=mk,
                linewidths=0,
                alpha=0.8,
                label=c if mk == marker_arr[m][0] else None,
                rasterized=True,
            )
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(order) <= max_legend:
        ax.legend(
            fontsize=5,
            markerscale=1.5,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            frameon=False,
            ncol=1 if len(order) <= 16 else 2,
        )
    else:
        ax.text(
            1.02,
            0.5,
            f"{len(order)} categories\n(legend omitted)",
            transform=ax.transAxes,
            fontsize=6,
            va="center",
        )


def embedding_figure(
    coords: dict[str, np.ndarray],
    colourings: list[tuple[str, pd.Series, dict]],
    suptitle: str,
    markers: np.ndarray | None = None,
):
    """One row per embedding method (``coords`` key), one column per colouring.

    ``colourings`` items are ``(title, labels, colour map)``.
    """
    methods = list(coords)
    fig, axes = plt.subplots(
        len(methods),
        len(colourings),
        figsize=(4.2 * len(colourings), 3.4 * len(methods)),
        squeeze=False,
    )
    for i, meth in enumerate(methods):
        for j, (title, labels, cmap) in enumerate(colourings):
            ax = axes[i, j]
            _scatter(ax, coords[meth], labels, cmap, markers, title=f"{meth}: {title}")
            ax.set_xlabel(f"{meth} 1", fontsize=7)
            ax.set_ylabel(f"{meth} 2", fontsize=7)
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def type_agreement_figure(corr: pd.DataFrame, title: str):
    """Heatmap of predicted-group x measured-group correlations (diagonal = matched)."""
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * corr.shape[1], 1.0 + 0.55 * corr.shape[0]))
    im = ax.imshow(corr.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(corr.shape[1]), corr.columns, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(corr.shape[0]), corr.index, fontsize=7)
    for i in range(corr.shape[0]):
        for j in range(corr.shape[1]):
            v = corr.iat[i, j]
            ax.text(
                j,
                i,
                "" if np.isnan(v) else f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                fontweight="bold" if i == j else "normal",
            )
    ax.set_xlabel("measured transcriptomic group (Tasic 2016)")
    ax.set_ylabel("predicted cre-line group")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="Pearson r (gene-centred group means)", shrink=0.8)
    fig.tight_layout()
    return fig


def patchseq_figure(
    per_gene: pd.DataFrame, per_cell: pd.DataFrame, cell_type: pd.Series, title: str
):
    """Per-gene r histogram (all vs CV-good genes) and per-cell r, model vs baseline."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    r_all = per_gene["r"].dropna()
    r_good = per_gene.loc[per_gene["cv_good"], "r"].dropna()
    bins = np.linspace(-1, 1, 41)
    ax.hist(r_all, bins=bins, density=True, alpha=0.5, label=f"all genes (n={len(r_all)})")
    if len(r_good):
        ax.hist(r_good, bins=bins, density=True, alpha=0.6, label=f"good in CV (n={len(r_good)})")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("per-gene Pearson r across cells (predicted vs measured)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    ax.set_title("per gene", fontsize=9)

    ax = axes[1]
    lim = [
        min(per_gene["rmse_model"].min(), per_gene["rmse_baseline"].min()),
        max(per_gene["rmse_model"].max(), per_gene["rmse_baseline"].max()),
    ]
    ax.scatter(
        per_gene["rmse_baseline"],
        per_gene["rmse_model"],
        s=2,
        alpha=0.3,
        c="grey",
        rasterized=True,
        label="all genes",
    )
    good = per_gene[per_gene["cv_good"]]
    ax.scatter(good["rmse_baseline"], good["rmse_model"], s=6, c="#D62728", label="good in CV")
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel("RMSE of training-mean baseline (log2)")
    ax.set_ylabel("RMSE of model (log2)")
    ax.legend(fontsize=7)
    ax.set_title("per gene: below the diagonal = model beats baseline", fontsize=9)

    ax = axes[2]
    types = cell_type.reindex(per_cell.index).fillna("unknown").astype(str)
    cmap = categorical_colours(types)
    for t in sorted(types.unique()):
        m = (types == t).to_numpy()
        ax.scatter(per_cell["r_baseline"][m], per_cell["r_model"][m], s=14, c=cmap[t], label=t)
    lo = float(np.nanmin(per_cell[["r_model", "r_baseline"]].to_numpy())) - 0.01
    hi = float(np.nanmax(per_cell[["r_model", "r_baseline"]].to_numpy())) + 0.01
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("r across genes: training-mean baseline")
    ax.set_ylabel("r across genes: model")
    ax.legend(fontsize=7)
    ax.set_title("per cell: above the diagonal = model beats baseline", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# Titles of the two joint spaces (see :mod:`ephys2expr.validate.embedding`).
JOINT_TITLES = {
    "zscore": "z-scored per source (as the original)",
    "pc_align": "corrected: projected on predicted PCs, standardised per source",
}


CELL_SET_TITLES = {
    "scala2021": "Scala 2021 cells (held-out animals)",
    "cadwell2016": "Cadwell 2016 cells (7 features)",
}
MODEL_COLOURS = {"type_mean": "#1F77B4", "per_cell": "#FF7F0E", "measured": GREY}


def cross_source_figure(table: pd.DataFrame, per_gene: pd.DataFrame, r_threshold: float):
    """Per cell set, per-gene r of the type-mean vs the per-cell model (one dot per shared
    gene), and the marker AUCs of both models beside the measured marker's AUC."""
    sets = list(dict.fromkeys(table["cell_set"]))
    fig, axes = plt.subplots(1, len(sets) + 1, figsize=(5.2 * (len(sets) + 1), 4.6))
    for ax, cs in zip(axes, sets, strict=False):
        g = per_gene[per_gene["cell_set"] == cs]
        t = table[table["cell_set"] == cs].set_index("model")
        ax.scatter(g["type_mean"], g["per_cell"], s=4, alpha=0.4, color="#444444")
        lim = [min(-0.2, g[["type_mean", "per_cell"]].min().min()), 1.0]
        ax.plot(lim, lim, color=GREY, lw=1)
        ax.axhline(r_threshold, color=GREY, lw=0.6, ls=":")
        ax.axvline(r_threshold, color=GREY, lw=0.6, ls=":")
        ax.set(xlabel="r, type-mean model", ylabel="r, per-cell model", xlim=lim, ylim=lim)
        ax.set_title(
            f"{CELL_SET_TITLES.get(cs, cs)}\n{len(g)} genes; median r "
            f"{t.loc['type_mean', 'median_r']:.2f} vs {t.loc['per_cell', 'median_r']:.2f}",
            fontsize=9,
        )
    ax = axes[-1]
    aucs = [c for c in table.columns if c.startswith("auc_") and c != "auc_mean"]
    bars = table.melt(["cell_set", "model"], aucs, "label", "auc").dropna()
    bars["x"] = bars["cell_set"].map({"scala2021": "", "cadwell2016": "Cadwell "}).fillna("")
    bars["x"] += bars["label"].str.removeprefix("auc_")
    xs = list(dict.fromkeys(bars["x"]))
    models = list(MODEL_COLOURS)
    w = 0.8 / len(models)
    for i, m in enumerate(models):
        b = bars[bars["model"] == m].set_index("x").reindex(xs)
        name = "measured marker" if m == "measured" else f"{m.replace('_', '-')} model"
        ax.bar(np.arange(len(xs)) + (i - 1) * w, b["auc"], w, label=name, color=MODEL_COLOURS[m])
    ax.axhline(0.5, color="black", lw=0.6, ls=":")
    ax.set_xticks(np.arange(len(xs)), xs, rotation=45, ha="right", fontsize=8)
    ax.set(ylim=(0, 1), ylabel="ROC AUC of the marker gene")
    ax.set_title("marker AUC per label (measured = the marker's own expression)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Cross-source comparison: type-mean vs per-cell model on the same cells")
    fig.tight_layout()
    return fig


def _exc_inh(labels: pd.Series) -> pd.Series:
    """Exc/Inh labels with the unscored ``""`` shown as ``unknown``."""
    return labels.replace("", "unknown")


def validation_figures(
    coords: dict,
    spaces: dict[str, np.ndarray],
    pred_meta: pd.DataFrame,
    meas_meta: pd.DataFrame,
    ephys_ok: np.ndarray,
    source: np.ndarray,
    palette: dict[str, str],
    mixing: dict,
    n_shared: int,
    agreement: TypeAgreement,
    patchseq: PatchSeqResult,
    n_patchseq_features: int,
) -> dict:
    """Every figure of the stage, ``{name: figure}``.

    Parameters
    ----------
    coords : dict
        ``{space: {method: 2-D coordinates}}`` of the embedded spaces (``ephys``,
        ``predicted``, ``measured``, ``joint_zscore``, ``joint_pc_align``).
    spaces : dict
        The embedded matrices (their shapes go into the titles).
    pred_meta, meas_meta : DataFrame
        Metadata (``cre_line``, ``group``, ``broad``, ``type``) of the subsampled predicted
        and measured cells, in the rows' order.
    ephys_ok : ndarray of bool
        Predicted cells with every ephys feature (the rows of the ``ephys`` space).
    source : ndarray of str
        ``predicted`` / ``measured`` per row of the joint spaces.
    palette : dict
        Cre line -> colour.
    mixing : dict
        Mixing numbers per correction (for the joint titles).
    n_shared : int
        Genes shared by predicted and measured expression.
    agreement, patchseq
        The type agreement and Patch-seq results.
    n_patchseq_features : int
        Features of the Patch-seq model.
    """
    pm, mm = pred_meta, meas_meta
    cre_cols = categorical_colours(pm["cre_line"], palette)
    grp_all = pd.concat([pm["group"], mm["group"]])
    grp_cols = categorical_colours(grp_all)
    figs = {}
    metas = {"ephys": pm[ephys_ok], "predicted": pm, "measured": mm}
    for name, meta in metas.items():
        col_cre = ("cre line", meta["cre_line"], cre_cols)
        if not meta["cre_line"].notna().any():  # the 170-gene RData has no cre line per cell
            col_cre = ("transcriptomic type", meta["type"], categorical_colours(meta["type"]))
        Xs = spaces[name]
        figs[f"embed_{name}"] = embedding_figure(
            coords[name],
            [
                col_cre,
                ("group", meta["group"], grp_cols),
                ("Exc/Inh", _exc_inh(meta["broad"].astype(str)), EXC_INH_COLOURS),
            ],
            f"{name} ({len(Xs)} cells, {Xs.shape[1]} "
            f"{'features' if name == 'ephys' else 'genes'}, z-scored)",
        )
    figs |= _joint_figures(coords, pm, mm, cre_cols, (grp_all, grp_cols), source, mixing, n_shared)
    agree = agreement.summary
    figs["type_agreement"] = type_agreement_figure(
        agreement.corr,
        f"type agreement over {agree['n_genes']} shared genes: matched median r "
        f"{agree['matched_r_median']:.2f}, unmatched {agree['unmatched_r_median']:.2f}",
    )
    figs["patchseq"] = patchseq_figure(
        patchseq.per_gene,
        patchseq.per_cell,
        patchseq.per_cell["major_type"],
        f"Cadwell 2016 Patch-seq ({patchseq.summary['n_cells']} cells), model on "
        f"{n_patchseq_features} features vs training-mean baseline",
    )
    return figs


def _joint_figures(coords, pm, mm, cre_cols, groups, source, mixing, n_shared) -> dict:
    """The joint spaces' figures (predicted + measured), one per correction."""
    grp_all, grp_cols = groups
    figs = {}
    cre_j = pd.concat(
        [
            pm["cre_line"].astype(str),
            mm["cre_line"].astype("string").fillna("measured (cre unknown)"),
        ]
    )
    cre_cols_j = {**cre_cols, "measured (cre unknown)": "#DDDDDD"}
    broad_j = _exc_inh(pd.concat([pm["broad"], mm["broad"]]).astype(str))
    markers = np.array([SOURCE_MARKERS[s] for s in source])
    for corr_name, title in JOINT_TITLES.items():
        mix = mixing[corr_name]
        figs[f"joint_{corr_name}"] = embedding_figure(
            coords[f"joint_{corr_name}"],
            [
                ("cre line (predicted)", cre_j, cre_cols_j),
                ("group", grp_all, grp_cols),
                ("Exc/Inh", broad_j, EXC_INH_COLOURS),
                ("source", pd.Series(source), SOURCE_COLOURS),
            ],
            f"predicted + measured on {n_shared} shared genes, {title} "
            f"(o predicted, ^ measured; mixing {mix['mean_fraction_measured']:.2f}"
            f" vs {mix['expected_if_mixed']:.2f} if mixed)",
            markers=markers,
        )
    return figs
