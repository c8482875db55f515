"""What the ``validate`` stage writes, assembled from its steps' results.

:func:`assemble_result` turns the inputs, the reference checks and the embeddings of
:func:`~ephys2expr.validate.run.validate_predictions` into a :class:`ValidationResult` (the
figures, the report, the tables and the headline metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from ephys2expr.features import CADWELL_FEATURES
from ephys2expr.model.store import ModelStore
from ephys2expr.readers.tasic import MeasuredSet
from ephys2expr.validate.plots import cross_source_figure, validation_figures


class ValidationInputs(NamedTuple):
    """What validation reads: the store, the predicted mouse cells (``pred``, ``pmeta``),
    the Allen cells' features, the palette, the measured reference and the shared genes."""

    store: ModelStore
    pred: pd.DataFrame
    pmeta: pd.DataFrame
    cell_tab: pd.DataFrame
    palette: dict
    meas: MeasuredSet
    shared: pd.Index


class ReferenceChecks(NamedTuple):
    """The Patch-seq refit and the per-cell store's checks (None without it)."""

    training_features: pd.DataFrame
    patchseq: object
    cross: object
    identity: object
    crosslab: object


class Embeddings(NamedTuple):
    """The subsamples, their spaces and 2-D coordinates."""

    sub_p: pd.Index
    sub_m: pd.Index
    ephys_ok: np.ndarray
    sub_src: np.ndarray
    spaces: dict
    coords: dict


@dataclass
class ValidationResult:
    """Everything the ``validate`` stage writes.

    Attributes
    ----------
    tables : dict
        ``{name: DataFrame}`` for ``<out-dir>/<name>.parquet`` (index kept).
    plot_tables : dict
        ``{name: DataFrame}`` for ``<plots-dir>/<name>.csv`` (no index; DVC plots).
    figures : dict
        ``{name: matplotlib figure}`` for ``<plots-dir>/<name>.png``.
    metrics : dict
        The headline numbers (``metrics/validate.json``).
    report : dict
        Every number (``reports/validate.json``).
    """

    tables: dict
    plot_tables: dict
    figures: dict
    metrics: dict
    report: dict


def assemble_result(
    s, inputs: ValidationInputs, joint, checks: ReferenceChecks, pictures: Embeddings
) -> ValidationResult:
    """The figures, report, tables and headline metrics of one validation."""
    pred, pmeta, palette, meas, shared = (
        inputs.pred,
        inputs.pmeta,
        inputs.palette,
        inputs.meas,
        inputs.shared,
    )
    agreement, mixing, transfer = joint
    patchseq, cross, identity, crosslab = (
        checks.patchseq,
        checks.cross,
        checks.identity,
        checks.crosslab,
    )
    coords, spaces, sub_p, sub_m = pictures.coords, pictures.spaces, pictures.sub_p, pictures.sub_m
    ephys_ok, sub_src = pictures.ephys_ok, pictures.sub_src
    cre = pmeta["cre_line"].astype(str)
    figures = validation_figures(
        coords,
        spaces,
        pmeta.loc[sub_p],
        meas.meta.loc[sub_m],
        ephys_ok,
        sub_src,
        palette,
        mixing,
        len(shared),
        agreement,
        patchseq,
        len(CADWELL_FEATURES),
    )
    report = {
        "reference": s.reference,
        "n_predicted_cells": int(len(pred)),
        "n_measured_cells": int(len(meas.expr)),
        "n_shared_genes": int(len(shared)),
        "embedding_subsample": {"predicted": len(sub_p), "measured": len(sub_m)},
        "palette": {
            "n_cre_lines_not_in_palette": int((~cre.drop_duplicates().isin(list(palette))).sum()),
            "n_cells_grey": int((~cre.isin(list(palette))).sum()),
        },
        "type_agreement": {k: v for k, v in agreement.summary.items() if k != "groups"},
        "type_agreement_within_class": agreement.within,
        "type_agreement_uncentred": agreement.uncentred,
        "mixing": mixing,
        "label_transfer": transfer,
        "patchseq": patchseq.summary,
    }
    tables = {
        "type_agreement": agreement.corr,
        "patchseq_genes": patchseq.per_gene,
        "patchseq_cells": patchseq.per_cell,
    }
    if cross is not None:
        report["cross_source"] = cross.summary
        tables |= {"cross_source": cross.table, "cross_source_genes": cross.per_gene}
        figures["cross_source"] = cross_source_figure(
            cross.table, cross.per_gene, s.cross_r_threshold
        )
    if identity is not None:
        table, report["identity_agreement"], figures["identity_agreement"] = identity
        if table is not None:
            tables["identity_agreement"] = table.reset_index()
    if crosslab is not None:  # the per-cell store on other labs' cells (not label transfer)
        report["transfer"], tables["transfer"], figures["transfer"] = crosslab
    return ValidationResult(
        tables=tables,
        plot_tables={
            "type_agreement": agreement.table(),
            "patchseq_good_genes": patchseq.per_gene[patchseq.per_gene["cv_good"]].reset_index(),
        },
        figures=figures,
        metrics=headline_metrics(report),
        report=report,
    )


def headline_metrics(report: dict) -> dict:
    """What ``dvc metrics show`` prints (docs/pipeline.md): ``type_top1`` (Cre-line groups
    whose mean predicted profile is closest to their own type) and, for other labs, the Allen
    cells' Exc/Inh agreement under ``align: auto`` (``xlab_excinh``) and family ECE."""
    out = {"type_top1": report["type_agreement"]["top1"]}
    transfer = report.get("transfer", {})
    for name, key in (
        ("xlab_excinh", "allen_exc_inh_auto"),
        ("xlab_ece", "allen_family_ece_known_tempered"),
    ):
        if key in transfer:
            out[name] = transfer[key]
    return out
