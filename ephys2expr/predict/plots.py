"""Sanity plots of predicted expression: marker genes by Cre line and by dendrite type, and
the features outside the training range.

:func:`prediction_figures` makes every figure of one input from its :class:`PlotInput`
(built by :func:`ephys2expr.predict.run.predict_tables`); the stage saves them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ephys2expr.model.store import ModelStore  # noqa: E402
from ephys2expr.taxonomy import MARKER_GENES  # noqa: E402

log = logging.getLogger("ephys2expr.predict")

DENDRITE_ORDER = ["aspiny", "sparsely spiny", "spiny"]


def _group_labels(meta: pd.DataFrame) -> pd.Series:
    """Cre line, or ``no Cre line (<species>)`` for cells without one (e.g. human cells)."""
    cre = meta["cre_line"] if "cre_line" in meta else pd.Series(None, index=meta.index)
    species = meta["species"] if "species" in meta else pd.Series("unknown", index=meta.index)
    fallback = "no Cre line (" + species.astype(str) + ")"
    return cre.where(cre.notna(), fallback).astype(str)


def marker_heatmap(
    markers: pd.DataFrame,
    meta: pd.DataFrame,
    title: str,
    r2: dict[str, float] | None = None,
    min_cells: int = 5,
):
    """Mean predicted log2 expression of marker genes per Cre line.

    Colours are the group means z-scored per gene (so each gene's pattern across lines
    is visible whatever its overall level); the numbers are the raw mean log2 values.
    Lines with fewer than ``min_cells`` predicted cells are left out (listed in the
    caption). Rows are ordered by the marker they express most (relative to other lines).

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = _group_labels(meta.loc[markers.index])
    counts = groups.value_counts()
    keep = counts[counts >= min_cells].index
    means = markers.groupby(groups).mean().loc[sorted(keep)]
    sd = means.std(axis=0, ddof=0).replace(0, 1.0)
    z = (means - means.mean(axis=0)) / sd
    order = (
        z.assign(_top=z.to_numpy().argmax(axis=1), _val=z.to_numpy().max(axis=1))
        .sort_values(["_top", "_val"], ascending=[True, False])
        .index
    )
    means, z = means.loc[order], z.loc[order]

    fig, ax = plt.subplots(figsize=(1.0 * len(means.columns) + 4, 0.32 * len(means) + 2.2))
    lim = max(2.0, float(np.nanmax(np.abs(z.to_numpy())))) if len(z) else 2.0
    im = ax.imshow(z.to_numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(means.shape[0]):
        for j in range(means.shape[1]):
            ax.text(
                j,
                i,
                f"{means.iat[i, j]:.1f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if abs(z.iat[i, j]) > 0.6 * lim else "black",
            )
    collabels = [
        f"{g}\nCV r²={r2[g]:.2f}" if r2 and g in r2 and np.isfinite(r2[g]) else g
        for g in means.columns
    ]
    ax.set_xticks(range(means.shape[1]), collabels, fontsize=8)
    ax.set_yticks(range(means.shape[0]), [f"{g} (n={counts[g]})" for g in means.index], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_xlabel("marker gene (numbers: mean predicted log2 expression)")
    ax.set_ylabel("Cre line of the recorded cells")
    dropped = sorted(set(counts.index) - set(keep))
    caption = f"lines with < {min_cells} cells left out: {len(dropped)}" if dropped else ""
    ax.set_title(title + ("\n" + caption if caption else ""), fontsize=10, pad=40)
    cbar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cbar.set_label("z-score of the line mean (per gene)")
    return fig


def marker_boxplots(
    markers: pd.DataFrame, meta: pd.DataFrame, title: str, r2: dict[str, float] | None = None
):
    """Box plots of predicted marker expression per dendrite type, one panel per gene.

    Whiskers span 1.5 IQR (outliers not drawn); the dashed line marks 0, the floor of
    log2(TPM + 1): predictions below it are the linear model extrapolating.
    """
    dend = meta.loc[markers.index, "dendrite_type"] if "dendrite_type" in meta else None
    if dend is None:
        dend = pd.Series("unknown", index=markers.index)
    dend = dend.fillna("unknown").astype(str)
    levels = [d for d in DENDRITE_ORDER if d in set(dend)] + sorted(set(dend) - set(DENDRITE_ORDER))
    n = len(markers.columns)
    ncol = min(3, max(n, 1))
    nrow = max(1, int(np.ceil(n / ncol)))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    colours = plt.get_cmap("tab10")
    for k, gene in enumerate(markers.columns):
        ax = axes[k // ncol][k % ncol]
        data = [markers.loc[dend == lv, gene].to_numpy() for lv in levels]
        box = ax.boxplot(data, patch_artist=True, showfliers=False, widths=0.6)
        for i, patch in enumerate(box["boxes"]):
            patch.set_facecolor(colours(i))
            patch.set_alpha(0.6)
        ax.set_xticks(
            range(1, len(levels) + 1),
            [f"{lv}\n(n={int((dend == lv).sum())})" for lv in levels],
            fontsize=8,
        )
        ax.axhline(0, color="grey", lw=0.8, ls="--")
        has_r2 = r2 is not None and gene in r2 and np.isfinite(r2[gene])
        ax.set_title(f"{gene} (CV r²={r2[gene]:.2f})" if has_r2 else gene, fontsize=10)
        ax.set_ylabel("predicted log2 expression")
    for k in range(n, nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def extrapolation_bars(flags: pd.DataFrame, meta: pd.DataFrame, features: list[str], title: str):
    """Fraction of predicted cells outside the tolerated training range, per feature/species."""
    species = meta.loc[flags.index, "species"].astype(str)
    levels = sorted(set(species))
    fig, ax = plt.subplots(figsize=(1.0 * len(features) + 2, 3.8))
    width = 0.8 / max(len(levels), 1)
    x = np.arange(len(features))
    for i, sp in enumerate(levels):
        rows = flags.loc[species == sp, "extrapolated_features"]
        frac = [
            rows.map(lambda t, f=f: f in t.split(",")).mean() if len(rows) else 0.0
            for f in features
        ]
        ax.bar(x + (i - (len(levels) - 1) / 2) * width, frac, width, label=f"{sp} (n={len(rows)})")
    ax.set_xticks(x, features, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of predicted cells\noutside training range")
    ax.set_xlabel("feature")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def marker_predictions(
    store: ModelStore,
    X: np.ndarray,
    gene_idx: np.ndarray,
    index: pd.Index,
    cell_sets: np.ndarray | None = None,
) -> pd.DataFrame:
    """Predicted log2 expression (float64) of the :data:`~ephys2expr.taxonomy.MARKER_GENES`
    among the selected genes ``gene_idx``, for the cells ``X`` (rows named by ``index``),
    each by its feature set (``cell_sets``, as in
    :func:`~ephys2expr.predict.outputs.write.iter_predictions`)."""
    from ephys2expr.predict.outputs.write import predict_block, set_terms

    all_genes = store.gene_names
    selected = {all_genes[i]: i for i in gene_idx}
    markers = [m for m in MARKER_GENES if m in selected]
    rows = np.array([selected[m] for m in markers], dtype=np.int64)
    if not len(X):
        return pd.DataFrame(np.empty((0, len(markers))), index=index, columns=markers)
    sets = np.zeros(len(X), dtype=np.int64) if cell_sets is None else cell_sets
    values = predict_block(set_terms(store, rows, np.float64), X, sets)
    return pd.DataFrame(values.T, index=index, columns=markers)


@dataclass
class PlotInput:
    """What the plots of one input need (a small slice of its predictions).

    Attributes
    ----------
    name : str
        Input name (file names and titles).
    meta : DataFrame
        Metadata + flags of the predicted cells.
    markers : DataFrame
        Predicted cells x marker genes (:data:`ephys2expr.taxonomy.MARKER_GENES` among the
        predicted genes), log2 expression.
    flags : DataFrame
        Screen flags of the predicted cells.
    features : list of str
        The model's features.
    tolerance : float
        The extrapolation tolerance (for the title).
    r2 : dict, optional
        Out-of-fold r2 per gene (shown beside the marker names).
    """

    name: str
    meta: pd.DataFrame
    markers: pd.DataFrame
    flags: pd.DataFrame
    features: list[str]
    tolerance: float
    r2: dict[str, float] | None = None


FIGURES = ("markers_by_cre", "markers_by_dendrite", "extrapolation")


def figure_names(name: str) -> list[str]:
    """File names of the plots of input ``name`` (the marker plots only when it has markers)."""
    return [f"{name}_{kind}.png" for kind in FIGURES]


def prediction_figures(inp: PlotInput) -> Iterator[tuple[str, object]]:
    """Yield ``(file name, figure)`` for each plot of one input, one figure at a time."""
    name, meta = inp.name, inp.meta
    if inp.markers.shape[1]:
        title = f"{name}: predicted marker expression by Cre line ({len(meta)} cells, mouse model)"
        yield figure_names(name)[0], marker_heatmap(inp.markers, meta, title, r2=inp.r2)
        title = f"{name}: predicted marker expression by dendrite type"
        yield figure_names(name)[1], marker_boxplots(inp.markers, meta, title, inp.r2)
    else:
        log.warning(
            "%s: none of the marker genes is among the predicted genes; no marker plots", name
        )
    title = (
        f"{name}: features outside the training range "
        f"(beyond min/max by more than {inp.tolerance:g} x range)"
    )
    yield figure_names(name)[2], extrapolation_bars(inp.flags, meta, inp.features, title)


__all__ = [
    "PlotInput",
    "extrapolation_bars",
    "figure_names",
    "marker_boxplots",
    "marker_heatmap",
    "marker_predictions",
    "prediction_figures",
]
