"""The train stage's figures (the stage writes them with :func:`ephys2expr.io.save_figure`)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ephys2expr.taxonomy import CLASS_MARKERS  # noqa: E402

R2_FLOOR = -1.0  # r2 below this is drawn at the floor (LOO r2 is unbounded below)
BASELINE_LABELS = {
    "mean": "mean only",
    "ols": "OLS (all features)",
    "class": "Exc/Inh class mean",
    "family": "RNA family mean (ceiling: true label)",
}


def r2_histogram(per_gene: pd.DataFrame):
    """Histogram of out-of-fold r2: the model against each baseline."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bins = np.linspace(R2_FLOOR, 1, 81)
    for col, label, kw in [
        ("ols_cv_r2", BASELINE_LABELS["ols"], {"color": "tab:orange"}),
        ("class_cv_r2", BASELINE_LABELS["class"], {"color": "tab:green"}),
        ("family_cv_r2", BASELINE_LABELS["family"], {"color": "tab:purple", "ls": ":"}),
    ]:
        if col not in per_gene.columns:  # the family ceiling exists for per-cell data only
            continue
        ax.hist(
            np.clip(per_gene[col].dropna(), R2_FLOOR, 1),
            bins=bins,
            histtype="step",
            lw=1.5,
            label=label,
            **kw,
        )
    ax.hist(
        np.clip(per_gene["cv_r2"].dropna(), R2_FLOOR, 1),
        bins=bins,
        alpha=0.6,
        color="tab:blue",
        label="penalised model",
    )
    mean_r2 = np.nanmedian(per_gene["mean_cv_r2"])
    ax.axvline(mean_r2, color="k", ls="--", lw=1, label=f"mean-only r2 ({mean_r2:.3f})")
    ax.set_yscale("log")
    ax.set_xlabel(f"out-of-fold r2 per gene (values below {R2_FLOOR:g} drawn at {R2_FLOOR:g})")
    ax.set_ylabel("genes (log scale)")
    ax.set_title(f"Out-of-fold r2 of {len(per_gene):,} genes")
    ax.legend(fontsize=8)
    return fig


def rmse_histogram(per_gene: pd.DataFrame):
    """Histogram of out-of-fold RMSE (log2 expression units), model vs mean-only."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    hi = np.nanquantile(np.r_[per_gene["cv_rmse"], per_gene["mean_cv_rmse"]], 0.995)
    bins = np.linspace(0, max(hi, 1e-6), 81)
    ax.hist(
        per_gene["cv_rmse"].clip(upper=hi),
        bins=bins,
        alpha=0.6,
        color="tab:blue",
        label="penalised model",
    )
    ax.hist(
        per_gene["mean_cv_rmse"].clip(upper=hi),
        bins=bins,
        histtype="step",
        lw=1.5,
        color="k",
        label=BASELINE_LABELS["mean"],
    )
    ax.set_yscale("log")
    ax.set_xlabel("out-of-fold RMSE (log2 expression)")
    ax.set_ylabel("genes (log scale)")
    ax.set_title("Out-of-fold RMSE per gene")
    ax.legend(fontsize=8)
    return fig


def model_vs_ols(per_gene: pd.DataFrame):
    """Per-gene out-of-fold r2: penalised model (y) against OLS (x)."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    x = per_gene["ols_cv_r2"].clip(lower=R2_FLOOR)
    y = per_gene["cv_r2"].clip(lower=R2_FLOOR)
    better = per_gene["beats_ols"].to_numpy()
    ax.scatter(
        x[~better],
        y[~better],
        s=2,
        alpha=0.3,
        color="tab:gray",
        rasterized=True,
        label=f"OLS at least as good ({(~better).sum():,})",
    )
    ax.scatter(
        x[better],
        y[better],
        s=2,
        alpha=0.3,
        color="tab:blue",
        rasterized=True,
        label=f"model better ({better.sum():,})",
    )
    ax.plot([R2_FLOOR, 1], [R2_FLOOR, 1], color="k", lw=1)
    ax.set_xlim(R2_FLOOR - 0.02, 1.02)
    ax.set_ylim(R2_FLOOR - 0.02, 1.02)
    ax.set_xlabel("OLS out-of-fold r2")
    ax.set_ylabel("penalised model out-of-fold r2")
    ax.set_title(f"Model vs OLS per gene (clipped at {R2_FLOOR:g})")
    ax.legend(fontsize=8, markerscale=4, loc="lower right")
    return fig


def plotted_genes(per_gene: pd.DataFrame, n_best: int = 6) -> tuple[list[str], list[str]]:
    """The genes :func:`observed_vs_predicted` shows: the ``n_best`` by CV r2, then markers."""
    best = list(per_gene["cv_r2"].dropna().sort_values(ascending=False).index[:n_best])
    markers = [g for g in CLASS_MARKERS if g in per_gene.index and g not in best]
    return best, markers


def observed_vs_predicted(per_gene, oof, targets, types, n_best: int = 6):
    """Observed vs out-of-fold predicted expression per cell type: best genes and markers."""
    best, markers = plotted_genes(per_gene, n_best)
    genes = best + markers
    ncol = 4
    nrow = max(1, int(np.ceil(len(genes) / ncol)))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.1 * nrow), squeeze=False)
    broad = types.reindex(oof.columns)["broad_type"].astype(str).to_numpy()
    colours = {"Exc": "tab:red", "Inh": "tab:blue"}
    size = 18 if len(broad) <= 100 else 3  # thousands of per-cell rows
    for ax, gene in zip(axes.flat, genes, strict=False):
        obs = targets.loc[gene].to_numpy(dtype=float)
        pred = oof.loc[gene].to_numpy(dtype=float)
        for cls in np.unique(broad):
            sel = broad == cls
            ax.scatter(obs[sel], pred[sel], s=size, color=colours.get(cls, "tab:gray"), label=cls)
        lo, hi = min(obs.min(), pred.min()), max(obs.max(), pred.max())
        pad = 0.05 * (hi - lo + 1e-9)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=0.8)
        kind = "marker" if gene in markers else "best"
        ax.set_title(f"{gene} ({kind}), r2={per_gene.at[gene, 'cv_r2']:.2f}", fontsize=9)
        ax.set_xlabel("observed log2 expr", fontsize=8)
        ax.set_ylabel("out-of-fold predicted", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(genes) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, title="broad type", title_fontsize=7)
    rows = "cell" if "group" in types.columns else "cell type"
    fig.suptitle(f"Observed vs out-of-fold predicted expression per {rows}", fontsize=11)
    fig.tight_layout()
    return fig


def coefficient_heatmap(per_gene, coef_std: pd.DataFrame, n_top: int = 40):
    """Standardised coefficients (per feature SD) of the top genes by out-of-fold r2."""
    top = list(per_gene["cv_r2"].dropna().sort_values(ascending=False).index[:n_top])
    data = coef_std.loc[top]
    lim = float(np.nanmax(np.abs(data.to_numpy()))) or 1.0
    fig, ax = plt.subplots(figsize=(0.45 * data.shape[1] + 3, 0.22 * len(top) + 1.8))
    im = ax.imshow(data.to_numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(data.shape[1]), data.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(top)), top, fontsize=7)
    ax.set_xlabel("feature")
    ax.set_title(
        f"Final-model coefficients of the {len(top)} best genes\n"
        "(log2 expression per feature SD; 0 = dropped by the penalty)",
        fontsize=10,
    )
    fig.colorbar(im, ax=ax, label="coefficient")
    return fig


def feature_set_figure(table: pd.DataFrame):
    """What each feature set achieves (rows of
    :func:`~ephys2expr.train.feature_sets.feature_set_table`): genes beating every baseline,
    the share of genes with out-of-fold r2 above 0.1 (and the median r2), the markers' r2."""
    names = [f"{n}\n({k} features)" for n, k in zip(table.index, table["n_features"], strict=True)]
    markers = [c for c in table.columns if c.startswith("r2_") and c != "r2_median"]
    fig, axes = plt.subplots(
        1, 3, figsize=(14, 0.55 * len(table) + 2.4), gridspec_kw={"width_ratios": [1, 1, 1.6]}
    )
    y = np.arange(len(table))[::-1]
    for ax, col, label in (
        (axes[0], "genes_beating_all", "genes beating every baseline"),
        (axes[1], "frac_r2_gt_0.1", "share of genes with out-of-fold r2 > 0.1"),
    ):
        ax.barh(y, table[col], color="tab:blue", alpha=0.7)
        ax.set_xlabel(label)
        ax.set_yticks(y, names if ax is axes[0] else [], fontsize=8)
        ax.set_xlim(0, table[col].max() * 1.45 or 1)
    for yi, (n, share, med) in zip(
        y, table[["genes_beating_all", "frac_r2_gt_0.1", "r2_median"]].to_numpy(), strict=True
    ):
        axes[0].text(n, yi, f" {n:,.0f}", va="center", fontsize=8)
        axes[1].text(share, yi, f" {share:.1%}\n (median r2 {med:.3f})", va="center", fontsize=7)
    data = np.clip(table[markers].to_numpy(dtype=float), R2_FLOOR, 1)
    im = axes[2].imshow(data, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(table[markers].to_numpy(dtype=float)):
        axes[2].text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    axes[2].set_xticks(range(len(markers)), [m[3:] for m in markers], rotation=45, ha="right")
    axes[2].set_yticks([])
    axes[2].set_title("out-of-fold r2 of the marker genes", fontsize=9)
    fig.colorbar(im, ax=axes[2], label="r2 (clipped at -1)")
    fig.suptitle("One model per feature set: what leaving features out costs", fontsize=11)
    fig.tight_layout()
    return fig


def train_figures(per_gene, oof, targets, types, coef_std, feature_sets=None) -> dict:
    """Every train-stage figure by its file stem (``plots/train/<stem>.png``); the feature
    set comparison only with more than one set (``feature_sets``: its table)."""
    figures = {
        "r2_hist": r2_histogram(per_gene),
        "rmse_hist": rmse_histogram(per_gene),
        "model_vs_ols": model_vs_ols(per_gene),
        "observed_vs_predicted": observed_vs_predicted(per_gene, oof, targets, types),
        "coef_heatmap": coefficient_heatmap(per_gene, coef_std),
    }
    if feature_sets is not None:
        figures["feature_sets"] = feature_set_figure(feature_sets)
    return figures


__all__ = ["feature_set_figure", "plotted_genes", "train_figures"]
