"""What a training run amounts to: the detailed report and the headline metrics.

:func:`train_report` summarises the per-gene table (the model, each baseline, the final
fit, the permutation null) in full; :func:`headline_metrics` picks the few numbers a DVC user
compares between runs (``metrics/train_<source>.json``). Neither holds timings: those are logged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ephys2expr.train.cv.baselines import BASELINES, CEILINGS, USER_BASELINES
from ephys2expr.train.settings import TrainSettings


def score_summary(r2: np.ndarray, rmse: np.ndarray) -> dict:
    """Quantiles of out-of-fold r2 (constant genes, NaN, left out), shares above 0.1 and
    0.5, and the median and mean RMSE."""
    ok = r2[np.isfinite(r2)]
    q = np.quantile(ok, [0.1, 0.25, 0.5, 0.75, 0.9]) if ok.size else [np.nan] * 5
    return {
        "r2_median": float(q[2]),
        "r2_mean": float(ok.mean()) if ok.size else float("nan"),
        "r2_q10": float(q[0]),
        "r2_q25": float(q[1]),
        "r2_q75": float(q[3]),
        "r2_q90": float(q[4]),
        "frac_r2_gt_0.1": float((ok > 0.1).mean()) if ok.size else 0.0,
        "frac_r2_gt_0.5": float((ok > 0.5).mean()) if ok.size else 0.0,
        "rmse_median": float(np.median(rmse)),
        "rmse_mean": float(rmse.mean()),
        "rmse_q90": float(np.quantile(rmse, 0.9)),
    }


def rounded(obj, digits: int = 6):
    """Round the floats of a nested dict (stable, readable diffs)."""
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, float):
        return round(obj, digits)
    return obj


def train_report(
    per_gene: pd.DataFrame,
    final,
    n_types: int,
    n_features: int,
    n_folds: int,
    settings: TrainSettings,
    gene_permutations_run: int = 0,
    rows: str = "types",
) -> dict:
    """Everything the per-gene table says about the run (``reports/train.json``).

    Parameters
    ----------
    per_gene : DataFrame
        The gathered per-gene table (scores, ``beats_<baseline>``, p/q values).
    final : MultiGeneElasticNet
        The refit on all rows (alpha and convergence).
    gene_permutations_run : int
        Gene x permutation cross-validations the null ran in total.
    rows : {"types", "cells"}
        What the rows are: cell-type means or single cells (names the headline metrics).
    """
    r2 = per_gene["cv_r2"].to_numpy()
    beats_all = per_gene[[f"beats_{b}" for b in BASELINES]].all(axis=1)
    beats_user = per_gene[[f"beats_{b}" for b in USER_BASELINES]].all(axis=1)
    baselines = {
        name: score_summary(
            per_gene[f"{name}_cv_r2"].to_numpy(), per_gene[f"{name}_cv_rmse"].to_numpy()
        )
        for name in BASELINES
    }
    report = {
        "rows": rows,
        "n_genes": int(len(per_gene)),
        "n_types": int(n_types),
        "n_features": int(n_features),
        "n_folds": int(n_folds),
        "model": score_summary(r2, per_gene["cv_rmse"].to_numpy()),
        "baselines": baselines,
        **_ceilings(per_gene, r2),
        "genes_beating": {name: int(per_gene[f"beats_{name}"].sum()) for name in BASELINES},
        "genes_beating_all_baselines": int(beats_all.sum()),
        "genes_beating_user_baselines": int(beats_user.sum()),
        "model_median_r2_beats": {
            name: bool(np.nanmedian(r2) > np.nanmedian(per_gene[f"{name}_cv_r2"]))
            for name in BASELINES
        },
        "final_model": {
            "train_r2_median": float(np.nanmedian(per_gene["train_r2"])),
            "alpha_median": float(np.median(final.alpha_)),
            "nonzero_median": float(np.median(per_gene["n_nonzero"])),
            "genes_all_zero": int((per_gene["n_nonzero"] == 0).sum()),
            "genes_not_converged": int((~final.converged_).sum()),
        },
    }
    if settings.n_permutations > 0:
        report["null"] = {
            "n_permutations": settings.n_permutations,
            "gene_permutations_run": int(gene_permutations_run),
            "genes_with_all_permutations": int(
                (per_gene["n_permutations"] == settings.n_permutations).sum()
            ),
            "genes_q_below_fdr": int((per_gene["q_value"].to_numpy() < settings.fdr_q).sum()),
            "genes_p_below_0.05": int((per_gene["p_value"] < 0.05).sum()),
            "genes_significant_and_beating_all": int((per_gene["significant"] & beats_all).sum()),
            # what predict marks trusted: significant and beating mean and OLS
            "genes_trusted": int((per_gene["significant"] & beats_user).sum()),
        }
    return rounded(report)


def _ceilings(per_gene: pd.DataFrame, r2: np.ndarray) -> dict:
    """Scores of the labelled ceilings present (``family``: per-cell data only), and the genes
    where the model reaches them - reported, never part of "beats all baselines"."""
    present = [c for c in CEILINGS if f"{c}_cv_r2" in per_gene.columns]
    if not present:
        return {}
    out = {}
    for name in present:
        c_r2 = per_gene[f"{name}_cv_r2"].to_numpy()
        out[name] = score_summary(c_r2, per_gene[f"{name}_cv_rmse"].to_numpy())
        out[name]["genes_model_at_least_as_good"] = int(
            (np.nan_to_num(r2, nan=-np.inf) >= np.nan_to_num(c_r2, nan=np.inf)).sum()
        )
    return {"ceilings": out}


# The keys of every metrics/train_<source>.json, the same for every source, so that
# `dvc metrics show metrics/train_*.json` prints one row per source (in 120 columns) and
# `dvc metrics diff` shows a shift of either distribution: out-of-fold r2 quantiles (10th,
# median, 90th), the per-gene RMSE median and 90th percentile, the genes to trust, the share
# of genes with r2 > 0.1, the identity classifier's family accuracy (per-cell sources with
# train.model mixture | best; null otherwise) and the 90 % intervals' coverage in CV.
HEADLINE_KEYS = (
    "r2_10",
    "r2_50",
    "r2_90",
    "rmse_50",
    "rmse_90",
    "sig",
    "r2_gt01",
    "fam_acc",
    "cov90",
)
HEADLINE_DIGITS = 4  # decimals: metrics are read by people, and the same on every machine


def headline_metrics(report: dict) -> dict:
    """The headline numbers of a :func:`train_report` (``metrics/train_<source>.json``).

    The keys are :data:`HEADLINE_KEYS`, the same for every source (null where a number does
    not apply: ``sig`` without the permutation null, ``fam_acc`` without an identity
    classifier, ``cov90`` without intervals), floats rounded to :data:`HEADLINE_DIGITS`
    decimals. ``sig``: genes with q below ``fdr_q`` that also beat every baseline, the set
    to trust. Every other number (the baselines, the ceilings, the feature sets) is in the
    report (docs/pipeline.md, "What DVC shows").
    """
    model = report["model"]
    intervals = report.get("intervals") or {}
    chosen = intervals.get("methods", {}).get(intervals.get("method"), {})
    values = {
        "r2_10": model["r2_q10"],
        "r2_50": model["r2_median"],
        "r2_90": model["r2_q90"],
        "rmse_50": model["rmse_median"],
        "rmse_90": model.get("rmse_q90"),
        "sig": report.get("null", {}).get("genes_significant_and_beating_all"),
        "r2_gt01": model["frac_r2_gt_0.1"],
        "fam_acc": (report.get("identity") or {}).get("family", {}).get("accuracy"),
        "cov90": chosen.get("coverage") if intervals.get("level") == 0.9 else None,
    }
    return {k: _headline_value(values[k]) for k in HEADLINE_KEYS}


def _headline_value(value):
    """A metric as written: None for a missing or non-finite number (JSON null), an int as
    is, a float rounded to :data:`HEADLINE_DIGITS` decimals."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    value = float(value)
    return round(value, HEADLINE_DIGITS) + 0.0 if np.isfinite(value) else None


__all__ = [
    "HEADLINE_DIGITS",
    "HEADLINE_KEYS",
    "headline_metrics",
    "rounded",
    "score_summary",
    "train_report",
]
