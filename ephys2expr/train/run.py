"""The train stage's work: prepare's tables in; model store, tables, metrics, figures out.

:func:`train_from_prepared` trains one model per feature set (``train.feature_sets``) with
:func:`~ephys2expr.train.evaluate.train_and_evaluate` - each set its own nested CV, baselines and
permutation null, on the same folds and permutations (both are seeded) - and joins them into
one model store (:func:`~ephys2expr.model.store.join_feature_sets`). The first set is the
full model: the per-gene table, the out-of-fold predictions, the headline metrics and the
figures are its; :mod:`~ephys2expr.train.feature_sets` compares the sets.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.executor import ExecutorSettings, open_executor
from ephys2expr.io import file_checksum
from ephys2expr.model.store import ModelStore, join_feature_sets, with_identity
from ephys2expr.train.cv.baselines import BASELINES, CEILINGS
from ephys2expr.train.evaluate import resolved_settings, train_and_evaluate
from ephys2expr.train.feature_sets import (
    derive_feature_sets,
    feature_set_table,
    few_cell_sets,
    missing_patterns,
)
from ephys2expr.train.identity.best import store_identity
from ephys2expr.train.inputs import load_training_inputs, training_paths, training_species
from ephys2expr.train.on_demand import stored_training_tables
from ephys2expr.train.one_set import fit_set
from ephys2expr.train.settings import TrainSettings
from ephys2expr.train.summary import headline_metrics
from ephys2expr.train.uncertainty.ood import cv_ood

log = logging.getLogger("ephys2expr")


@dataclass
class TrainOutputs:
    """What the train stage writes (:func:`train_from_prepared`).

    Attributes
    ----------
    store : ModelStore
        Every feature set's final models with their per-gene tables and the provenance
        (``data/models/<source>``).
    per_gene : DataFrame
        The full set's per-gene table (``data/train/<source>/per_gene.parquet``).
    oof : DataFrame
        The full set's out-of-fold predictions, genes x rows (only the plotted genes when
        streamed).
    metrics, report : dict
        Headline numbers (``metrics/train_<source>.json``) and the detailed summary.
    shown_targets : DataFrame
        Measured expression of (at least) the plotted genes, genes x rows.
    types : DataFrame
        Training-row metadata (``broad_type`` colours the plots).
    coef_std : DataFrame
        The full set's final coefficients on the standardised scale, genes x features.
    feature_sets : DataFrame
        One row per feature set (:func:`~ephys2expr.train.feature_sets.feature_set_table`).
    ood : DataFrame or None
        Per training row: its OOD score against its outer training fold and its
        out-of-fold error (:func:`~ephys2expr.train.uncertainty.ood.cv_ood`; the figure's table).
    identity : dict
        ``model: mixture | best`` (per-cell sources): feature set -> its
        :class:`~ephys2expr.train.identity.best.IdentityFit` (empty for ``lasso``).
    """

    store: ModelStore
    per_gene: pd.DataFrame
    oof: pd.DataFrame
    metrics: dict
    report: dict
    shown_targets: pd.DataFrame
    types: pd.DataFrame
    coef_std: pd.DataFrame
    feature_sets: pd.DataFrame
    ood: pd.DataFrame | None = None
    identity: dict = field(default_factory=dict)

    def plot_table(self) -> pd.DataFrame:
        """The per-gene scores ``dvc plots`` shows (``plots/train/per_gene.csv``)."""
        cols = ["cv_r2", "cv_rmse"] + [f"{b}_cv_r2" for b in BASELINES + CEILINGS]
        cols = [c for c in cols if c in self.per_gene.columns]  # ceilings: per-cell data
        table = self.per_gene[cols].round(6)
        table.index.name = "gene"
        return table

    def figures(self) -> dict:
        """The train figures by file stem (:func:`ephys2expr.train.plots.train_figures`)."""
        from ephys2expr.train.plots import train_figures
        from ephys2expr.train.uncertainty.intervals import calibration_figure
        from ephys2expr.train.uncertainty.ood import ood_error_figure

        figures = train_figures(
            self.per_gene,
            self.oof,
            self.shown_targets,
            self.types,
            self.coef_std,
            self.feature_sets,
        )
        rows = "cells (grouped CV)" if "group" in self.types.columns else "types (LOO)"
        if self.ood is not None:
            figures["ood_vs_error"] = ood_error_figure(self.ood, rows)
        if "intervals" in self.report:
            figures["interval_calibration"] = calibration_figure(self.report["intervals"], rows)
        figures.update(self.identity_figures())
        return figures

    def identity_figures(self) -> dict:
        """The full set's identity confusion matrices and reliability diagram; a placeholder
        saying why for a source without them (type means, or ``model: lasso``)."""
        from ephys2expr.identity.plots import absent_figure, confusion_figure, reliability_figure

        if not self.identity:
            why = "no identity classifier: " + (
                "cell-type means have no cells to classify"
                if "group" not in self.types.columns
                else "train.model is 'lasso'"
            )
            return {
                "identity_confusion": absent_figure(why),
                "identity_reliability": absent_figure(why),
            }
        fit = next(iter(self.identity.values()))  # the full set's
        levels = {lv: (r.oof, r.y, r.classes) for lv, r in fit.levels.items()}
        return {
            "identity_confusion": confusion_figure(levels),
            "identity_reliability": reliability_figure(levels),
        }


def derived_sets(
    prepared_dir, features: list[str], inputs, settings: TrainSettings, min_features: int
) -> tuple[dict[str, list[str]], pd.DataFrame]:
    """The derived feature sets and the missing-pattern table they come from.

    ``inputs`` names the per-cell tables ``cells_<name>.parquet`` of ``prepared_dir`` that
    predict applies the store to (``cells.inputs``); none = the full set only.
    """
    tables = {}
    for name in inputs:
        path = Path(prepared_dir) / f"cells_{name}.parquet"
        if not path.is_file():
            raise InputError(f"{path}: no such file (cells.inputs names {name!r})")
        table = pd.read_parquet(path)  # small: one row per cell
        tables[name] = table[[f for f in features if f in table.columns]]
    patterns = missing_patterns(tables, features)
    return derive_feature_sets(features, patterns, min_features), patterns


def train_from_prepared(
    prepared_dir,
    settings: TrainSettings,
    executor_settings: ExecutorSettings | None = None,
    stream_targets: bool = False,
    source: str = "",
    cell_inputs=(),
    min_features: int = 1,
) -> TrainOutputs:
    """Train on prepare's tables in ``prepared_dir``: the whole train stage but the writing.

    With ``stream_targets`` the targets are read a gene chunk at a time
    (``executor.gene_chunk``) and out-of-fold predictions are kept only for the plotted
    genes: genes are independent, so refitting just those genes (without the null) gives
    exactly their out-of-fold predictions from the full run. ``source`` (the training
    source's name, ``--source``) is recorded in the report.
    """
    start = time.perf_counter()
    executor_settings = executor_settings or ExecutorSettings()
    inputs = training_paths(Path(prepared_dir))
    features, targets, types = load_training_inputs(*inputs.values(), stream=stream_targets)
    settings = resolved_settings(settings, types)  # the store records what was run
    if stream_targets and settings.model != "lasso":
        log.warning(
            "model %r needs the targets in memory: streamed targets train 'lasso'", settings.model
        )
        settings = settings.replace(model="lasso")
    derived, patterns = derived_sets(
        prepared_dir, list(features.columns), cell_inputs, settings, min_features
    )
    sets = settings.resolve_feature_sets(list(features.columns), derived)
    few = few_cell_sets(sets, patterns, settings.min_set_cells, settings.feature_sets)
    full = next(iter(sets))
    provenance = {
        "params": settings.as_dict(),
        "species": training_species(types),
        "inputs_md5": {name: file_checksum(path)[0] for name, path in inputs.items()},
    }
    results, models, identity = _train_sets(
        sets,
        few,
        features,
        targets,
        types,
        settings,
        provenance,
        executor_settings,
        stream_targets,
    )
    store = _store_of(models, identity, targets, types, features, inputs, stream_targets)
    result = results[full]
    oof, shown = _shown_oof(result, inputs, features, targets, types, settings, stream_targets)
    table = feature_set_table(results, sets)
    report, ood = _report(result, results, table, features[sets[full]], oof, shown)
    report["missing_patterns"] = json.loads(patterns.to_json(orient="index"))
    report["sets_without_null"] = few
    if source:
        report["source"] = source
    metrics = headline_metrics(report)
    final = result.final
    coef_std = pd.DataFrame(final.coef_std_, index=targets.index, columns=features.columns)
    _log_done(result.report, table, final, settings, start)
    return TrainOutputs(
        store, result.per_gene, oof, metrics, report, shown, types, coef_std, table, ood, identity
    )


def _train_sets(
    sets, few, features, targets, types, settings, provenance, executor_settings, stream_targets
):
    """Each feature set trained (:func:`fit_set`) on one executor: ``(results, models,
    identity)`` by set (only the full set, the first, keeps its out-of-fold predictions)."""
    full = next(iter(sets))
    results, models, identity = {}, [], {}
    with open_executor(executor_settings) as ex:
        for i, (name, cols) in enumerate(sets.items()):
            log.info(
                "feature set %d/%d %r: %d features (%s)%s",
                i + 1,
                len(sets),
                name,
                len(cols),
                ", ".join(cols),
                " - fewer than train.min_set_cells cells need it: no permutation null of its own"
                if name in few
                else "",
            )
            t0 = time.perf_counter()
            keep_oof = name == full and not stream_targets  # only the full set's is written
            own = settings.replace(n_permutations=0) if name in few else settings
            results[name], model, fit = fit_set(
                features[cols],
                targets,
                types,
                own,
                name,
                provenance,
                executor=ex,
                gene_chunk=executor_settings.gene_chunk,
                keep_oof=keep_oof,
            )
            models.append(model)
            if fit is not None:
                identity[name] = fit
            log.info("feature set %r trained in %.0f s", name, time.perf_counter() - t0)
    return results, models, identity


def _store_of(models, identity, targets, types, features, inputs, stream_targets) -> ModelStore:
    """The sets' models joined into one store with its identity classifiers and the
    training tables (self-contained: predict fits a set the store lacks from them)."""
    store = join_feature_sets(models)
    if identity:  # model mixture / best: the classifiers and class means go into the store
        store = with_identity(store, store_identity(identity, targets.index))
    # self-contained: predict fits a feature set the store lacks from these (on_demand)
    stored_targets, stored_types = stored_training_tables(
        targets if not stream_targets else pd.read_parquet(inputs["train_targets"]),
        types,
        features.index,
    )
    return dataclasses.replace(store, train_targets=stored_targets, train_types=stored_types)


def _shown_oof(result, inputs, features, targets, types, settings, stream_targets):
    """The out-of-fold predictions and targets the plots show: all genes, or with streamed
    targets the plotted genes refitted without the null (genes are independent)."""
    from ephys2expr.train.plots import plotted_genes

    oof, shown = result.oof, targets
    if stream_targets:
        best, markers = plotted_genes(result.per_gene)
        shown = pd.read_parquet(inputs["train_targets"], filters=[("gene", "in", best + markers)])
        shown = shown[list(features.index)].astype(float)
        no_null = settings.replace(n_permutations=0)
        oof = train_and_evaluate(features, shown, types, no_null).oof
    return oof, shown


def _report(result, results, table, full_features, oof, shown):
    """The report (the full set's, with every set's achievement and intervals) and the OOD
    score's cost in CV: ``(report, ood)``."""
    # {set: {column: value}}; pandas writes NaN (a constant marker's r2) as null
    report = {**result.report, "feature_sets": json.loads(table.to_json(orient="index"))}
    # the full set's intervals are report["intervals"]; every set's chosen method and coverage
    report["intervals"]["by_feature_set"] = {
        n: {
            "method": r.intervals.method,
            "coverage": r.report["intervals"]["methods"][r.intervals.method]["coverage"],
        }
        for n, r in results.items()
    }
    chosen = report["intervals"]["methods"][report["intervals"]["method"]]
    log.info(
        "90 %% intervals in CV: method %r, coverage %.3f (plain %.3f), median width %.2f x the "
        "gene's SD, %.2f x plain's",
        report["intervals"]["method"],
        chosen["coverage"],
        report["intervals"]["methods"]["plain"]["coverage"],
        chosen["median_width_over_gene_sd"] or float("nan"),
        report["intervals"]["median_width_ratio_to_plain"] or float("nan"),
    )
    ood, report["ood_cv"] = cv_ood(full_features, oof, shown, result.folds, result.row_coverage)
    log.info(
        "OOD score in CV (k=%d): %.1f %% of held-out rows above 99; by score bin median "
        "|error| %s, 90 %% interval coverage %s; Spearman rho %s",
        report["ood_cv"]["k"],
        100 * report["ood_cv"]["frac_ood"],
        {b: v["median_abs_error"] for b, v in report["ood_cv"]["bins"].items()},
        {b: v.get("interval_coverage") for b, v in report["ood_cv"]["bins"].items()},
        report["ood_cv"]["spearman_rho"],
    )
    return report, ood


def _log_done(rep, table, final, settings, start) -> None:
    """The closing lines: the full set's headline, each set's, and genes not converged."""
    log.info(
        "done in %.0f s: median out-of-fold r2 %.3f; genes beating mean/OLS/class: %s; "
        "beating all: %d; q < %g: %s",
        time.perf_counter() - start,
        rep["model"]["r2_median"],
        "/".join(str(rep["genes_beating"][b]) for b in BASELINES),
        rep["genes_beating_all_baselines"],
        settings.fdr_q,
        rep.get("null", {}).get("genes_q_below_fdr", "n/a"),
    )
    for name, row in table.iterrows():
        log.info(
            "feature set %r: %d genes beat every baseline, median r2 %.3f",
            name,
            row["genes_beating_all"],
            row["r2_median"],
        )
    if not np.all(final.converged_):
        log.warning("%d genes did not converge", int((~final.converged_).sum()))


__all__ = ["TrainOutputs", "derived_sets", "train_from_prepared"]
