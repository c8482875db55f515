"""``model: mixture | best`` for per-cell sources: the identity classifiers, the mixture, the
per-gene choice and the held-out null, on top of one feature set's lasso run.

:func:`apply_identity` takes the lasso's :class:`~ephys2expr.train.evaluate.TrainResult` (run
without its refit null, with each fold's inner-CV error kept) and returns the same result
for the chosen model: its out-of-fold predictions and scores in ``per_gene`` (``cv_r2``,
``beats_<baseline>``, p/q values of the held-out null), each kind's own r2 beside them
(``<kind>_kind_cv_r2``) and the final kind of each gene (``model_kind``), with the report's
``identity`` (classifier scores per level) and ``model_kinds`` (genes with r2 > 0.1 per
kind, genes each kind wins) sections.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ephys2expr.model.store import LevelClassifier, StoreIdentity
from ephys2expr.train.cv.baselines import BASELINES
from ephys2expr.train.cv.folds import pooled_scores
from ephys2expr.train.cv.null import bh_qvalues
from ephys2expr.train.evaluate import TrainResult
from ephys2expr.train.identity.classifier_cv import LevelCV, identity_levels, nesting_report
from ephys2expr.train.identity.mixture import (
    KINDS,
    MixtureCV,
    held_out_null,
    kind_report,
    mixture_cv,
)
from ephys2expr.train.settings import TrainSettings
from ephys2expr.train.summary import headline_metrics, train_report
from ephys2expr.train.uncertainty.intervals import recalibrate

log = logging.getLogger("ephys2expr")


@dataclass
class IdentityFit:
    """What the model store and the figures need of the identity models of one feature set.

    Attributes
    ----------
    levels : dict
        ``family`` / ``type`` ->
        :class:`~ephys2expr.train.identity.classifier_cv.LevelCV` (the final
        classifier in ``.final``; out-of-fold probabilities for the figures).
    mixture : MixtureCV
        Class means on all rows and the final per-gene kind.
    model : str
        ``mixture`` or ``best``.
    """

    levels: dict
    mixture: MixtureCV
    model: str

    def gene_kinds(self) -> np.ndarray:
        """The final kind of each gene (names from
        :data:`~ephys2expr.train.identity.mixture.KINDS`)."""
        return np.asarray(KINDS, dtype=object)[self.mixture.final_choice[self.model]]


def identity_settings(settings: TrainSettings) -> TrainSettings:
    """The lasso run's settings under ``model: mixture | best``: no refit null (the held-out
    null tests the chosen model instead)."""
    return settings.replace(n_permutations=0) if settings.model != "lasso" else settings


def apply_identity(
    result: TrainResult,
    features: pd.DataFrame,
    targets: pd.DataFrame,
    types: pd.DataFrame,
    settings: TrainSettings,
) -> tuple[TrainResult, IdentityFit]:
    """The chosen model's result (module docstring) from the lasso's ``result``.

    ``settings`` are the run's (``model`` resolved: ``mixture`` or ``best``; their
    ``n_permutations`` sizes the held-out null).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _apply_identity(result, features, targets, types, settings)


def _apply_identity(result, features, targets, types, settings):
    # BLAS on one thread: the products here are small (11 features, 1,000 rows), and idle
    # OpenBLAS threads spinning cost more than they save (measured: the type-level
    # classifier 5x slower with the default threads on 2 shared cores)
    t0 = time.perf_counter()
    X = features.to_numpy(dtype=float)
    rows = types.loc[features.index]
    groups = rows["group"].astype(str).to_numpy() if settings.cv == "group_kfold" else None
    levels: dict[str, LevelCV] = identity_levels(X, rows, result.folds, settings, groups)
    Y = np.ascontiguousarray(targets[list(features.index)].to_numpy(dtype=float).T)
    final = result.final
    final_mse = final.cv_mse_[np.arange(len(final.alpha_index_)), final.alpha_index_]
    mix = mixture_cv(
        Y,
        result.oof.to_numpy().T,
        result.inner_mse,
        final_mse,
        levels,
        result.folds,
        settings,
        groups,
    )
    model = settings.model
    pred = mix.oof[model]
    per_gene = _chosen_per_gene(result, Y, pred, mix, levels, settings)
    report = _identity_report(per_gene, result, X, Y, rows, levels, mix, settings)
    intervals, row_coverage = result.intervals, result.row_coverage
    if result.interval_rows is not None:  # the chosen model's residuals, not the Lasso's
        intervals, report["intervals"], row_coverage = recalibrate(
            X,
            Y,
            pred,
            result.folds,
            result.interval_rows,
            per_gene.index,
            list(features.columns),
            per_gene["y_sd"],
        )
    oof = pd.DataFrame(pred.T, index=result.oof.index, columns=result.oof.columns)
    frac = report["model_kinds"]["frac_r2_gt_0.1"]
    log.info(
        "model %r: genes with out-of-fold r2 > 0.1: %s; final kinds %s (%.0f s)",
        model,
        ", ".join(f"{k} {100 * v:.1f} %" for k, v in frac.items()),
        report["model_kinds"]["genes_won"][model]["final"],
        time.perf_counter() - t0,
    )
    out = replace(
        result,
        per_gene=per_gene,
        oof=oof,
        metrics=headline_metrics(report),
        report=report,
        intervals=intervals,
        row_coverage=row_coverage,
    )
    return out, IdentityFit(levels, mix, model)


def _chosen_per_gene(result, Y, pred, mix, levels, settings) -> pd.DataFrame:
    """The per-gene table of the chosen model: each kind's r2, the chosen scores and kind,
    the baselines beaten and the held-out null's p/q values."""
    model = settings.model
    per_gene = result.per_gene.copy()
    for kind in (*KINDS, "mixture"):
        per_gene[f"{kind}_kind_cv_r2"] = pooled_scores(Y, mix.oof[kind])[0]
    r2, rmse = pooled_scores(Y, pred)
    per_gene["cv_r2"], per_gene["cv_rmse"] = r2, rmse
    per_gene["model_kind"] = IdentityFit(levels, mix, model).gene_kinds()
    for name in BASELINES:
        b_r2 = per_gene[f"{name}_cv_r2"].to_numpy()
        per_gene[f"beats_{name}"] = np.nan_to_num(r2, nan=-np.inf) > np.nan_to_num(b_r2, nan=np.inf)
    B = settings.n_permutations
    if B > 0:
        p, seconds = held_out_null(Y, pred, result.folds, r2, B, settings.seed)
        per_gene["p_value"], per_gene["q_value"] = p, bh_qvalues(p)
        per_gene["n_permutations"] = B
        per_gene["significant"] = per_gene["q_value"].to_numpy() < settings.fdr_q
        log.info("held-out permutation null: %d permutations in %.1f s", B, seconds)
    return per_gene


def _identity_report(per_gene, result, X, Y, rows, levels, mix, settings) -> dict:
    """The train report of the chosen model, with the classifiers' scores per level and
    the kinds' section."""
    model, final, B = settings.model, result.final, settings.n_permutations
    report = train_report(
        per_gene, final, len(X), X.shape[1], len(result.folds), settings, B * len(per_gene), "cells"
    )
    report["model_kind"] = model
    report["identity"] = {lv: res.report(result.folds) for lv, res in levels.items()}
    nesting = nesting_report(levels, rows)
    if nesting is not None:  # the type inside the family, as predict reports it
        report["identity"]["type_in_family"] = nesting
    report["model_kinds"] = kind_report(Y, mix)
    if B > 0:
        report["null"]["scheme"] = "held-out permutation within outer folds (train/mixture.py)"
    return report


def stored_classifier(clf) -> LevelClassifier:
    """What the store keeps of a fitted
    :class:`~ephys2expr.identity.classifier.IdentityClassifier`: the kind its inner CV chose
    (see :func:`store_identity`)."""
    model = clf.models_[clf.kind_]
    classes = [str(c) for c in clf.classes_]
    if clf.kind_ == "knn":
        zeros = np.zeros((len(classes), len(clf.mean_)))
        return LevelClassifier(
            classes,
            zeros,
            np.zeros(len(classes)),
            clf.mean_,
            clf.scale_,
            "knn",
            float(model["k"]),
            model["X"],
            model["y"],
        )
    return LevelClassifier(
        classes,
        model["coef"],
        model["intercept"],
        clf.mean_,
        clf.scale_,
        clf.kind_,
        float(clf.param_),
    )


def store_identity(identity: dict, genes) -> StoreIdentity:
    """The model store's identity part from each feature set's :class:`IdentityFit`: its
    final classifiers and the class means on all rows (the same for every set).

    The store ships the kind the inner CV chose, the one the outer CV scored: a softmax
    (``logreg``, ``majority``) as coefficients, a ``knn`` as its standardised training rows
    and their labels (rebuilt on load from the store's ``train_features`` and
    ``train_types``, no pickle). Before, a knn choice was replaced by the logreg refit.
    """
    classifiers = {
        name: {lv: stored_classifier(res.final) for lv, res in fit.levels.items()}
        for name, fit in identity.items()
    }
    fit = next(iter(identity.values()))
    means = {
        lv: pd.DataFrame(
            fit.mixture.means[lv],
            index=[str(c) for c in res.classes],
            columns=[str(g) for g in genes],
        )
        for lv, res in fit.levels.items()
    }
    return StoreIdentity(classifiers, means)


__all__ = [
    "IdentityFit",
    "apply_identity",
    "identity_settings",
    "store_identity",
    "stored_classifier",
]
