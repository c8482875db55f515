"""The validation of predicted expression against measured expression, in one call.

:func:`validate_predictions` reads the predictions, the model store (its genes, CV r2 and
the settings it was trained with), the training tables and the measured references (Tasic
2016, Cadwell 2016 Patch-seq), and returns every table, number and figure the ``validate``
stage writes (:class:`ValidationResult`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from ephys2expr import paths
from ephys2expr.errors import InputError
from ephys2expr.model.store import ModelStore, load_model_store
from ephys2expr.predict.outputs.read import read_predictions
from ephys2expr.readers.cadwell import read_cadwell
from ephys2expr.readers.palette import read_palette
from ephys2expr.readers.tasic import MeasuredSet, read_tasic_geo, read_tasic_rda
from ephys2expr.taxonomy import cre_group, exc_inh_truth
from ephys2expr.train.inputs import load_training_inputs
from ephys2expr.validate.agreement import type_agreement_all
from ephys2expr.validate.embedding import (
    EmbeddingRunner,
    joint_mixing,
    joint_space,
    subsample,
    zscore_columns,
)
from ephys2expr.validate.identity import (
    allen_families,
    family_agreement,
    family_agreement_figure,
)
from ephys2expr.validate.patchseq.cadwell import validate_patchseq
from ephys2expr.validate.patchseq.cross_source import validate_cross_source
from ephys2expr.validate.result import (
    Embeddings,
    ReferenceChecks,
    ValidationInputs,
    ValidationResult,
    assemble_result,
    headline_metrics,
)
from ephys2expr.validate.settings import ValidateSettings
from ephys2expr.validate.transfer.scores import (
    cadwell_coverage,
    transfer_figure,
    transfer_summary,
    transfer_table,
)
from ephys2expr.validate.transfer.sets import transfer_sets

log = logging.getLogger("ephys2expr.validate")

# The model store's per-gene column that says how well a gene is predicted in CV.
CV_R2_COLUMN = "cv_r2"


def load_predictions(
    path: Path, genes: pd.Index, store: ModelStore | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a predictions file (``.h5ad`` or ``.parquet``) into (cells x genes, metadata);
    with ``store``, genes left out as constant are filled in with their intercept."""
    pred, meta = read_predictions(path, store=store)
    meta.index = meta.index.astype(str)
    pred.index = meta.index
    gcols = pred.columns.intersection(genes)
    if len(gcols) == 0:
        raise InputError(f"{path}: no column is a gene of the model store")
    if "cre_line" not in meta.columns:
        raise InputError(f"{path}: missing column 'cre_line'")
    pred = pred[gcols].astype(float)
    if not np.isfinite(pred.to_numpy()).all():
        raise InputError(f"{path}: predicted expression has NaN or infinite values")
    return pred, meta


def predictions_file(predictions_dir: str | os.PathLike, name: str) -> Path:
    """``<dir>/<name>.h5ad`` (what predict writes by default), else ``<dir>/<name>.parquet``."""
    h5ad = Path(predictions_dir) / f"{name}.h5ad"
    return h5ad if h5ad.is_file() else h5ad.with_suffix(".parquet")


def _mouse_cells_with_groups(pred: pd.DataFrame, meta: pd.DataFrame):
    """Mouse cells only (Tasic 2016 and Cadwell are mouse), with ``group`` and ``broad``."""
    if "species" in meta.columns:
        mouse = (meta["species"].fillna("mouse") == "mouse").to_numpy()
        pred, meta = pred[mouse], meta[mouse]
    meta = meta.copy()
    meta["group"] = [
        cre_group(c, lay, d)
        for c, lay, d in zip(
            meta["cre_line"], meta.get("layer"), meta.get("dendrite_type"), strict=True
        )
    ]
    meta["broad"] = [
        exc_inh_truth(c, d)
        for c, d in zip(meta["cre_line"], meta.get("dendrite_type"), strict=True)
    ]
    return pred, meta


def _measured(settings: ValidateSettings, raw_dir: Path, genes: list[str]) -> MeasuredSet:
    if settings.reference == "rda":
        return read_tasic_rda(
            paths.in_raw_dir(raw_dir, paths.TASIC_EXPR), paths.in_raw_dir(raw_dir, paths.TASIC_META)
        )
    return read_tasic_geo(settings.geo_counts, settings.geo_clustering, genes=genes)


# The per-cell model's train stage writes its out-of-fold predictions here (genes x cells).
OOF_FILE = "oof_predictions.parquet"


def _cross_source(paired_dirs, type_tables, type_store, ps, patchseq, s):
    """Read the per-cell model's store, tables and out-of-fold predictions and compare;
    ``(CrossSourceResult, the per-cell store)``."""
    model_dir, prepared_dir, train_dir = (Path(d) for d in paired_dirs)
    paired_store = load_model_store(model_dir)
    tables = (prepared_dir / f"train_{n}.parquet" for n in ("features", "targets", "types"))
    paired = load_training_inputs(*tables)
    oof = pd.read_parquet(train_dir / OOF_FILE)
    if not oof.columns.isin(paired[0].index).all():
        raise InputError(f"{train_dir / OOF_FILE}: cells do not match {prepared_dir}")
    return validate_cross_source(
        type_tables,
        type_store,
        ps,
        patchseq.predicted,
        paired,
        paired_store,
        oof,
        s.cross_r_threshold,
    ), paired_store


def _identity_agreement(paired_store, prepared_dir: Path, name: str):
    """``(table, summary, figure)`` of the per-cell store's families of the Allen cells
    (``cells_<name>.parquet`` of its prepared folder) against their Cre lines and dendrites;
    a placeholder figure and no table for a store without identity classifiers."""
    if paired_store.identity is None:
        from ephys2expr.identity.plots import absent_figure

        why = "no identity classifier in the per-cell store (train.model is 'lasso')"
        return None, {"skipped": why}, absent_figure(why)
    cells = pd.read_parquet(prepared_dir / f"cells_{name}.parquet")
    cells.index = cells.index.astype(str)
    table, summary = family_agreement(allen_families(paired_store, cells))
    log.info(
        "identity of the Allen cells (per-cell store): Exc/Inh agreement %.2f (%d cells), "
        "interneuron-line family agreement %.2f (%d cells)",
        summary["class_agreement"],
        summary["n_class_scored"],
        summary["interneuron_family_agreement"],
        summary["n_interneuron_line_cells"],
    )
    return table, summary, family_agreement_figure(table, summary)


def _transfer(paired_store, raw_dir: Path, prepared_dir: Path, cadwell):
    """``(summary and table as records, table, figure)`` of the per-cell store on the labelled
    foreign sets (:mod:`~ephys2expr.validate.transfer`); None without identity classifiers."""
    if paired_store.identity is None or paired_store.train_types is None:
        return None
    sets = transfer_sets(raw_dir, prepared_dir, cadwell)
    table = transfer_table(paired_store, sets)
    summary = transfer_summary(table)
    coverage = None if cadwell is None else cadwell_coverage(paired_store, cadwell)
    if coverage is not None:
        summary["cadwell_coverage_90"] = {
            row.alignment: round(row.coverage, 4) for row in coverage.itertuples()
        }
    log.info("transfer: %s", summary)
    records = json.loads(table.round(4).to_json(orient="records"))
    return {**summary, "table": records}, table, transfer_figure(table)


def validate_predictions(
    settings: ValidateSettings,
    model_dir: str | os.PathLike,
    prepared_dir: str | os.PathLike,
    predictions_dir: str | os.PathLike,
    raw_dir: str | os.PathLike = paths.RAW,
    paired_dirs: tuple | None = None,
) -> ValidationResult:
    """Compare ``<predictions_dir>/<settings.predictions>.h5ad`` (or ``.parquet``) with measured
    expression.

    Type agreement (group means), joint spaces with mixing and Exc/Inh label transfer before
    and after the correction, the Patch-seq refit on Cadwell's features, and the 2-D
    embeddings of seeded subsamples (UMAPs in a worker process while t-SNEs run here when
    ``settings.embedding_workers`` > 1; the results do not depend on it). With ``paired_dirs`` (the
    per-cell model's store, prepared tables and train output folders) also the cross-source
    comparison of the two models on the same held-out cells
    (:mod:`~ephys2expr.validate.patchseq.cross_source`).
    """
    s = settings
    model_dir, prepared_dir, raw_dir = Path(model_dir), Path(prepared_dir), Path(raw_dir)
    runner = EmbeddingRunner(s.embedding_workers).start()  # compiles UMAP in a worker meanwhile
    try:
        inputs = _read_inputs(s, model_dir, prepared_dir, predictions_dir, raw_dir)
        joint = _type_agreement_and_mixing(s, inputs)
        checks = _reference_checks(s, inputs, model_dir, prepared_dir, raw_dir, paired_dirs)
        pictures = _embeddings(s, inputs, checks.training_features, runner)
    finally:
        runner.close()
    return assemble_result(s, inputs, joint, checks, pictures)


def _read_inputs(s, model_dir, prepared_dir, predictions_dir, raw_dir) -> ValidationInputs:
    """The store, the predictions (mouse cells with groups), the Allen cells' features, the
    palette and the measured reference, with the genes both share."""
    store = load_model_store(model_dir)
    genes_tab = store.primary.genes
    if CV_R2_COLUMN not in genes_tab.columns:
        raise InputError(f"{model_dir / 'genes.parquet'}: missing column '{CV_R2_COLUMN}'")
    predictions = predictions_file(predictions_dir, s.predictions)
    pred, pmeta = _mouse_cells_with_groups(*load_predictions(predictions, genes_tab.index, store))
    cell_tab = pd.read_parquet(prepared_dir / f"cells_{s.predictions}.parquet")
    cell_tab.index = cell_tab.index.astype(str)
    palette = read_palette(paths.in_raw_dir(raw_dir, paths.DRIVER_PALETTE))
    meas = _measured(s, raw_dir, list(pred.columns))
    log.info(
        "predicted: %d cells x %d genes; measured: %d cells x %d genes",
        *pred.shape,
        *meas.expr.shape,
    )
    shared = pred.columns.intersection(meas.expr.columns)
    if len(shared) < 10:
        raise InputError(
            f"{predictions}: only {len(shared)} genes shared with the measured reference"
        )
    log.info("%d genes shared between predicted and measured", len(shared))
    return ValidationInputs(store, pred, pmeta, cell_tab, palette, meas, shared)


def _type_agreement_and_mixing(s, inputs: ValidationInputs):
    """Type agreement (group means) and the joint space's mixing and label transfer, on all
    cells: ``(agreement, mixing, transfer)``."""
    pred, pmeta, meas, shared = inputs.pred, inputs.pmeta, inputs.meas, inputs.shared
    agreement = type_agreement_all(
        pred[shared],
        pmeta["group"],
        meas.expr[shared],
        meas.meta["group"],
        min_cells=s.min_group_cells,
    )
    X = np.vstack([pred[shared].to_numpy(), meas.expr[shared].to_numpy()])
    source = np.array(["predicted"] * len(pred) + ["measured"] * len(meas.expr))
    broad = np.concatenate(
        [pmeta["broad"].to_numpy(dtype=str), meas.meta["broad"].to_numpy(dtype=str)]
    )
    mixing, transfer = joint_mixing(X, source, broad, s.n_pcs, s.n_neighbors, s.seed)
    return agreement, mixing, transfer


def _reference_checks(s, inputs, model_dir, prepared_dir, raw_dir, paired_dirs) -> ReferenceChecks:
    """The Patch-seq refit (Cadwell 2016) and, with ``paired_dirs``, the cross-source
    comparison, the per-cell store's identity agreement and its transfer to other labs."""
    store = inputs.store
    cadwell = (paths.CADWELL_EXPR, paths.CADWELL_META, paths.CADWELL_EPHYS, paths.CADWELL_SDRF)
    ps = read_cadwell(*(paths.in_raw_dir(raw_dir, p) for p in cadwell))
    tables = (prepared_dir / f"train_{n}.parquet" for n in ("features", "targets", "types"))
    tf, tt, types = load_training_inputs(*tables)
    if s.embedding_workers > 1:  # one core is compiling UMAP in the worker: do not fight over it
        numba.set_num_threads(1)
    genes_tab = store.primary.genes
    cv_good = genes_tab.index[genes_tab[CV_R2_COLUMN] > s.cv_r2_threshold]
    patchseq = validate_patchseq(ps, tf, tt, cv_good, store, str(model_dir))
    cross = identity = crosslab = None
    if paired_dirs is not None:
        cross, paired_store = _cross_source(paired_dirs, (tf, tt, types), store, ps, patchseq, s)
        identity = _identity_agreement(paired_store, Path(paired_dirs[1]), s.predictions)
        crosslab = _transfer(paired_store, raw_dir, Path(paired_dirs[1]), ps)
    return ReferenceChecks(tf, patchseq, cross, identity, crosslab)


def _embeddings(s, inputs: ValidationInputs, tf: pd.DataFrame, runner) -> Embeddings:
    """The 2-D embeddings (pictures) of seeded subsamples: features, predicted, measured and
    the two joint spaces."""
    pred, meas, shared, cell_tab = inputs.pred, inputs.meas, inputs.shared, inputs.cell_tab
    sub_p = subsample(pred.index, s.max_cells, s.seed)
    sub_m = subsample(meas.expr.index, s.max_cells, s.seed + 1)
    feat_cols = [c for c in tf.columns if c in cell_tab.columns]
    ephys = cell_tab.loc[sub_p, feat_cols]
    ephys_ok = ephys.notna().all(axis=1).to_numpy()
    sub_src = np.array(["predicted"] * len(sub_p) + ["measured"] * len(sub_m))
    Xj = np.vstack([pred.loc[sub_p, shared].to_numpy(), meas.expr.loc[sub_m, shared].to_numpy()])
    joint = {
        f"joint_{c}": joint_space(Xj, sub_src, c, n_components=s.n_pcs, seed=s.seed)
        for c in ("zscore", "pc_align")
    }
    spaces = {
        "ephys": zscore_columns(ephys.to_numpy()[ephys_ok]),
        "predicted": zscore_columns(pred.loc[sub_p].to_numpy()),
        "measured": zscore_columns(meas.expr.loc[sub_m].to_numpy()),
        **joint,
    }
    log.info("embedding %d spaces with t-SNE and UMAP", len(spaces))
    coords = runner.run(
        spaces, seed=s.seed, n_neighbors=s.n_neighbors, tsne_max_iter=s.tsne_max_iter
    )
    return Embeddings(sub_p, sub_m, ephys_ok, sub_src, spaces, coords)


__all__ = [
    "CV_R2_COLUMN",
    "OOF_FILE",
    "ValidationResult",
    "headline_metrics",
    "load_predictions",
    "predictions_file",
    "validate_predictions",
]
