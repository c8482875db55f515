"""Figures of the identity classifier: confusion matrices and reliability diagrams."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ephys2expr.identity.scores import identity_scores, reliability_bins  # noqa: E402


def confusion_figure(levels: dict):
    """One panel per level: out-of-fold confusion, each true class's row as shares.

    ``levels``: level name -> (probabilities, true class indices, class names).
    """
    fig, axes = plt.subplots(1, len(levels), figsize=(7 * len(levels), 6.5), squeeze=False)
    for ax, (level, (proba, y, classes)) in zip(axes[0], levels.items(), strict=True):
        n = len(classes)
        cm = np.zeros((n, n))
        np.add.at(cm, (y, proba.argmax(axis=1)), 1)
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        im = ax.imshow(share, cmap="viridis", vmin=0, vmax=1)
        ticks = np.arange(n)
        small = n > 20  # t-types: too many for labels
        ax.set_xticks(ticks if not small else [])
        ax.set_yticks(ticks if not small else [])
        if not small:
            ax.set_xticklabels(classes, rotation=90)
            ax.set_yticklabels(classes)
            for i in range(n):
                for j in range(n):
                    if cm[i, j]:
                        ax.text(
                            j,
                            i,
                            int(cm[i, j]),
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="w" if share[i, j] < 0.5 else "k",
                        )
        s = identity_scores(proba, y)
        ax.set_title(
            f"{level} ({n} classes): accuracy {s['accuracy']:.3f}, "
            f"balanced {s['balanced_accuracy']:.3f}",
            fontsize=10,
        )
        ax.set_xlabel("predicted (out-of-fold, grouped by animal)")
        ax.set_ylabel("true (transcriptomic label)")
        fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class's cells")
    fig.tight_layout()
    return fig


def reliability_figure(levels: dict):
    """Mean top-class probability against accuracy per probability bin, every level on one
    axis (the diagonal = calibrated); ``levels`` as in :func:`confusion_figure`."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="calibrated")
    for level, (proba, y, _) in levels.items():
        b = reliability_bins(proba, y)
        ok = b["n"] > 0
        s = identity_scores(proba, y)
        ax.plot(
            b["confidence"][ok],
            b["accuracy"][ok],
            "o-",
            label=f"{level}: ECE {s['ece']:.3f}, log-loss {s['log_loss']:.2f}",
        )
        for c, a, n in zip(b["confidence"][ok], b["accuracy"][ok], b["n"][ok], strict=True):
            ax.annotate(str(n), (c, a), fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability of the top class (bin mean)")
    ax.set_ylabel("share of cells whose top class is right")
    ax.set_title("Identity reliability (out-of-fold; numbers = cells per bin)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def absent_figure(what: str):
    """A placeholder figure saying why there is nothing to draw (e.g. a type-mean source)."""
    fig, ax = plt.subplots(figsize=(5.5, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, what, ha="center", va="center", wrap=True, fontsize=10)
    return fig


__all__ = ["absent_figure", "confusion_figure", "reliability_figure"]
