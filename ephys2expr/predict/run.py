"""The predict stage's work: read and check every input, then predict and write each one.

:func:`predict_tables` is the one function the stage calls. It reads and screens every
input before it writes anything (a bad second input leaves no half-finished first one),
writes the predictions (Parquet, the per-gene table beside it, optionally ``.h5ad``) and
returns the headline metrics, the detailed report and what the plots need.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ephys2expr.cell_inputs import CellSettings
from ephys2expr.errors import InputError
from ephys2expr.executor import ExecutorSettings, open_executor
from ephys2expr.io import write_parquet
from ephys2expr.model.store import ModelStore, describe_sets
from ephys2expr.predict.align import aligned_identity
from ephys2expr.predict.inputs.cells import load_cells
from ephys2expr.predict.inputs.screen import (
    CellScreen,
    extrapolation_by_feature,
    predictable_columns,
)
from ephys2expr.predict.intervals import has_intervals
from ephys2expr.predict.jobs import Job
from ephys2expr.predict.on_demand import add_missing_sets, sets_to_fit
from ephys2expr.predict.outputs.output_set import OutputSet
from ephys2expr.predict.outputs.read import constant_genes
from ephys2expr.predict.outputs.write import write_predictions
from ephys2expr.predict.plots import PlotInput, marker_predictions
from ephys2expr.predict.quality import set_quality, sets_without_null
from ephys2expr.predict.settings import PredictSettings
from ephys2expr.predict.summary import (
    constant_genes_note,
    file_metadata,
    headline_metrics,
    marker_medians,
    model_report,
)
from ephys2expr.rounding import significant

log = logging.getLogger("ephys2expr.predict")


@dataclass
class PredictResult:
    """What :func:`predict_tables` returns for the stage to write.

    Attributes
    ----------
    metrics : dict
        Headline numbers (``metrics/predict_<source>.json``, :func:`headline_metrics`).
    report : dict
        Everything else: per-species and per-feature counts, settings, files written.
    plots : list of PlotInput
        One per input, for :func:`ephys2expr.predict.plots.prediction_figures`.
    """

    metrics: dict
    report: dict
    plots: list[PlotInput] = field(default_factory=list)


def select_genes(store: ModelStore, genes: str | bool, where: str = "model store") -> np.ndarray:
    """Row indices of the genes to write, by the ``predict.genes`` setting.

    ``varying``: genes with a nonzero coefficient in some feature set (a constant gene's
    prediction is its intercept for every cell, so writing it adds bytes, not information);
    ``all``; or ``predictable``: genes for which every boolean ``beats_*`` column of the
    store's (full set's) genes table is True (out-of-fold r2 beats each baseline the train
    stage computed). ``True``
    / ``False`` mean ``predictable`` / ``all`` (the former ``only_predictable``).
    """
    if isinstance(genes, bool):
        genes = "predictable" if genes else "all"
    table = store.primary.genes
    if genes == "all":
        return np.arange(len(table))
    if genes == "varying":
        return np.setdiff1d(np.arange(len(table)), constant_genes(store))
    cols = predictable_columns(table)
    if not cols:
        raise InputError(
            f"{where}: genes table has no boolean 'beats_*' column, so "
            "only_predictable cannot be applied"
        )
    return np.flatnonzero(table[cols].all(axis=1).to_numpy())


def predict_tables(
    jobs: list[Job],
    store: ModelStore,
    settings: PredictSettings,
    executor_settings: ExecutorSettings | None = None,
    id_column: str | None = None,
    species: str | None = None,
    where: str = "model store",
    outputs: OutputSet | None = None,
    fit_set=None,
    cells: CellSettings | None = None,
) -> PredictResult:
    """Predict the genes of ``settings.genes`` for the cells of each job and write them.

    Parameters
    ----------
    jobs : list of Job
        From :func:`~ephys2expr.predict.jobs.prediction_jobs`.
    store : ModelStore
        The models (``load_model_store``).
    settings : PredictSettings
    executor_settings : ExecutorSettings, optional
        Where the chunks of cells are computed (default in-process); same bytes either way.
    id_column, species : str, optional
        For user tables: the id column and the species of cells without one.
    where : str
        How errors about the store name it (the model folder).
    outputs : OutputSet, optional
        The run's output set (files are written to its temporary paths; the caller commits
        it with the other outputs). Without it, this call's files are committed together
        when it returns.
    fit_set : callable, optional
        ``fit_set(store, features) -> (model, note)``: fits a feature set the store lacks
        (:func:`ephys2expr.train.on_demand.fit_feature_set`, which the stage passes). With
        ``missing: feature_set`` every missing pattern of the inputs that no set of the store
        has exactly (cells with >= ``min_features`` features) gets its set this way, so
        every such cell is predicted from all its features; without it (the pipeline: train
        fits every set of the ``cells.inputs`` tables) those cells are not predicted, with a
        warning.
    cells : CellSettings, optional
        The ``cells:`` section: ``min_features`` (default: its default).

    Returns
    -------
    PredictResult
        Headline metrics, the detailed report and the plot inputs; the predictions are
        written to each job's files (:meth:`Job.files`).
    """
    if outputs is None:
        with OutputSet([j.source for j in jobs], [where] if Path(where).is_dir() else []) as own:
            own.plan(*(p for job in jobs for p in job.files().values()))
            return predict_tables(
                jobs,
                store,
                settings,
                executor_settings,
                id_column,
                species,
                where,
                own,
                fit_set,
                cells,
            )
    min_features = (cells or CellSettings()).min_features
    store, on_demand = _with_missing_sets(
        jobs, store, settings, min_features, fit_set, id_column, where
    )
    screen = _screen(settings, min_features, store)
    gene_idx = _genes_to_predict(store, settings, where)
    items = _read_inputs(jobs, store, screen, settings, id_column, species)
    run = _Run(store, settings, gene_idx, where, outputs)
    run.report["model"]["on_demand_sets"] = on_demand
    plots = []
    with open_executor(executor_settings) as ex:
        for item, job in zip(items, jobs, strict=True):
            plots.append(run.predict_one(item, job, ex))
    return PredictResult(metrics=headline_metrics(run.report), report=run.report, plots=plots)


def _screen(settings, min_features: int, store) -> CellScreen:
    """The cell screen (missing features, extrapolation, OOD) fitted to the store."""
    return CellScreen(
        settings.missing,
        settings.extrapolation_tolerance,
        settings.ood_neighbors,
        settings.ood_percentile,
        min_features,
    ).fit(store)


def _with_missing_sets(jobs, store, settings, min_features, fit_set, id_column, where):
    """With ``missing: feature_set``: the store with a set fitted for every missing pattern
    the inputs need (``fit_set``), or a warning naming the cells left out without it;
    ``(store, {set: note})``."""
    on_demand: dict[str, dict] = {}
    if fit_set is not None and settings.missing == "feature_set":
        store, on_demand = add_missing_sets(
            [job.source for job in jobs],
            store,
            min_features,
            fit_set,
            id_column,
            settings.implausible,
        )
    elif settings.missing == "feature_set":
        _warn_missing_sets(jobs, store, min_features, id_column, where, settings.implausible)
    return store, on_demand


def _genes_to_predict(store, settings, where: str) -> np.ndarray:
    """The store's indices of the genes of ``settings.genes`` (one log line; none: an error)."""
    gene_idx = select_genes(store, settings.genes, where=where)
    log.info(
        "model store %s: %d genes x %d features; predicting %d genes (genes: %s)",
        where,
        len(store.primary.genes),
        len(store.features),
        len(gene_idx),
        settings.genes,
    )
    if len(gene_idx) == 0:
        raise InputError(f"{where}: no gene passes genes: {settings.genes}; nothing to predict")
    return gene_idx


def _read_inputs(jobs, store, screen, settings, id_column, species) -> list:
    """Read and check every input before anything is written (a bad second input leaves no
    half-finished first one); an input with no cell to predict is one error line."""
    items = [
        load_cells(
            job.source,
            store,
            screen,
            name=job.name,
            id_column=id_column,
            species=species,
            strict=settings.strict,
            implausible=settings.implausible,
        )
        for job in jobs
    ]
    for item in items:
        if item.screen.kept.any():
            continue
        if settings.missing == "feature_set":
            reasons = item.screen.flags["reason"].value_counts()
            why = "; ".join(f"{n} {r}" for r, n in reasons.items())
            raise InputError(
                f"{item.path}: no cell is predicted ({len(item.meta)} cells: {why}); "
                f"the store offers {describe_sets(store)}"
            )
        raise InputError(
            f"{item.path}: no cell left to predict (all {len(item.meta)} have "
            f"a missing feature; try --set missing=feature_set or missing=impute)"
        )
    return items


class _Run:
    """What every input of one predict run shares: the genes, the per-set quality, the
    report's model section and the files' metadata; :meth:`predict_one` does one input."""

    def __init__(self, store, settings, gene_idx, where, outputs) -> None:
        self.store, self.settings, self.gene_idx = store, settings, gene_idx
        self.where, self.outputs = where, outputs
        table = store.primary.genes
        self.genes_table = table.iloc[gene_idx]
        self.constant = constant_genes_note(store, gene_idx, where)
        omitted = (
            np.setdiff1d(constant_genes(store), gene_idx) if settings.genes == "varying" else []
        )
        self.n_omitted = len(omitted)
        self.n_omitted_negative = (
            int((store.primary.intercept[omitted] < 0).sum()) if len(omitted) else 0
        )
        # the plots show the markers as every cell's prediction is defined: constant genes too
        self.marker_idx = gene_idx if settings.genes == "predictable" else np.arange(len(table))
        self.r2 = table["cv_r2"].to_dict() if "cv_r2" in table.columns else None
        self.quality = set_quality(store, gene_idx)  # the h5ad's varm: per-set gene quality
        no_null = sets_without_null(store)
        if no_null:
            log.info(
                "feature sets without the permutation null (no q-values, nothing trusted): %s",
                ", ".join(no_null),
            )
        self.level = settings.interval_level if has_intervals(store) else None
        if self.level is None:  # info: stores built in code (tests, notebooks) have none either
            log.info(
                "%s: the model store holds no prediction intervals (schema 5 or older, or "
                "built without training); no layers lower/upper: retrain it (dvc repro train)",
                where,
            )
        self.report = {
            "model": model_report(
                store, gene_idx, self.constant, self.quality, no_null, self.level
            ),
            "settings": settings.as_dict(),
            "inputs": {},
        }
        self.file_meta = file_metadata(store, settings, self.constant, no_null, self.level, where)

    def predict_one(self, item, job: Job, ex) -> PlotInput:
        """Predict and write one input; its summary goes into the report."""
        store, settings, outputs = self.store, self.settings, self.outputs
        t0 = time.perf_counter()
        # features aligned by batch, identity obs/obsm (docs/transfer.md)
        X, meta, obsm, alignment = aligned_identity(store, item, settings)
        file_meta = {"input": item.name, **self.file_meta}
        if alignment:
            file_meta["alignment"] = alignment
        files = job.files()
        written = write_predictions(
            files.get(".parquet"),
            store,
            X,
            meta,
            self.gene_idx,
            chunk_cells=settings.chunk_cells,
            file_metadata=file_meta,
            h5ad_path=files.get(".h5ad"),
            executor=ex,
            outputs=outputs,
            where=str(item.path),
            cell_sets=item.screen.cell_sets,
            obsm=obsm,
            interval_level=self.level,
            parquet_intervals=settings.parquet_intervals,
            varm=self.quality,
        )
        write_parquet(self.genes_table, outputs.temp(files["genes"]))
        log.info(
            "%s: wrote %s (%d cells x %d genes) in %.1f s",
            item.name,
            job.output,
            len(meta),
            len(self.gene_idx),
            time.perf_counter() - t0,
        )
        # below zero among every cell's predictions, constant genes included
        below = written.pop("n_below_zero") + self.n_omitted_negative * len(meta)
        total = written.pop("n_values") + self.n_omitted * len(meta)
        written["values_below_zero"] = round(below / total, 4) if total else 0.0
        summary = {**item.summary(), **written}
        summary["extrapolated_by_feature"] = extrapolation_by_feature(
            item.screen.flags, item.screen.kept, store.features
        )
        # per feature: standardised mean difference and KS statistic against the
        # training rows, largest |SMD| first (a list: the JSON's keys are sorted)
        summary["shift"] = [{"feature": f, **v} for f, v in item.shift.items()]
        # MB to 3 digits: the exact bytes of a compressed file follow the values' last bits
        summary["files_mb"] = {
            str(p): significant(outputs.temp(p).stat().st_size / 1e6, 3) for p in files.values()
        }
        summary["alignment"] = alignment
        markers = marker_predictions(store, X, self.marker_idx, meta.index, item.screen.cell_sets)
        summary["markers_by_species_and_dendrite_type"] = marker_medians(markers, meta)
        self.report["inputs"][item.name] = summary
        return PlotInput(
            name=item.name,
            meta=meta,
            markers=markers,
            flags=item.screen.flags.loc[item.screen.kept],
            features=store.features,
            tolerance=settings.extrapolation_tolerance,
            r2=self.r2,
        )


def _warn_missing_sets(
    jobs, store: ModelStore, min_features: int, id_column, where, implausible: str
) -> None:
    """Warn about each missing pattern of the inputs that the store has no set for (its cells
    are not predicted): train fits one for every pattern of the ``cells.inputs`` tables, so a
    store of other inputs or settings was given."""
    for job in jobs:
        for features in sets_to_fit(job.source, store, min_features, id_column, implausible):
            log.warning(
                "%s: cells with exactly %s are not predicted: %s has no such feature set "
                "(train fits one per missing pattern of the cells.inputs tables: retrain with "
                "these inputs, dvc repro train)",
                job.source,
                ", ".join(features),
                where,
            )


__all__ = [
    "headline_metrics",
    "PredictResult",
    "predict_tables",
    "select_genes",
]
