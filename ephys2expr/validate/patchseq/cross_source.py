"""Cross-source comparison: the type-mean model vs the per-cell (paired) model on the same
held-out cells and their shared genes.

Two cell sets, each predicted by both models:

* **Scala cells** (the per-cell model's training cells, every one held out once): the
  per-cell model's out-of-fold predictions (``oof_predictions.parquet`` of its train stage:
  each cell predicted by a model that never saw its animal) vs the type-mean store's feature
  set of the features both models have (``no_adratio``: the type-mean store's ``adratio``
  is not in Scala), which never saw any Scala cell. Measured: the Scala log2(CPM+1) targets.
* **Cadwell 2016** (45 layer-1 interneurons with all 7 of its features): both stores'
  feature set of exactly Cadwell's 7 features (``cadwell``). Measured: Cadwell log2(TPM+1).

Only stored models predict (:func:`~ephys2expr.validate.patchseq.cadwell.stored_feature_set`):
validation never fits a model of its own.

Per model and cell set: the per-gene Pearson r across cells (median, share above a
threshold), and the ROC AUC of each label's marker gene (predicted expression as the score).
Both are invariant to the scale of the prediction, so log2 CPM vs log2 TPM does not matter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ephys2expr.features import CADWELL_FEATURES
from ephys2expr.model.store import ModelStore
from ephys2expr.readers.cadwell import PatchSeqSet
from ephys2expr.taxonomy import CLASS_MARKERS, MARKER_GENES
from ephys2expr.validate.patchseq.cadwell import (
    _pearson_columns,
    stored_feature_set,
    varies_columns,
)

log = logging.getLogger("ephys2expr.validate")

# Label -> its marker gene (from the taxonomy's lists): Exc/Inh by the pan-markers, the
# interneuron families by their namesake gene.
LABEL_MARKERS: dict[str, str] = {
    "Inh": CLASS_MARKERS[CLASS_MARKERS.index("Gad1")],
    "Exc": CLASS_MARKERS[CLASS_MARKERS.index("Slc17a7")],
    **{f: MARKER_GENES[MARKER_GENES.index(f)] for f in ("Pvalb", "Sst", "Vip", "Lamp5")},
}
# Cadwell 2016 labels only eNGC (elongated neurogliaform, Lamp5 family) vs SBC-like cells,
# all inhibitory: the one label its metadata supports is eNGC, scored by Lamp5.
CADWELL_LABEL = "eNGC"
CADWELL_MARKER = LABEL_MARKERS["Lamp5"]
MODELS = ("type_mean", "per_cell")
MEASURED = "measured"  # the marker's measured expression: the AUC a perfect model reaches


def scala_labels(types: pd.DataFrame) -> pd.DataFrame:
    """Boolean label table (cells x labels) of per-cell training rows: ``Inh``/``Exc`` from
    ``broad_type``, the families from ``family``."""
    out = {b: types["broad_type"].astype(str) == b for b in ("Inh", "Exc")}
    fam = types["family"].astype(str)
    out.update({f: fam == f for f in ("Pvalb", "Sst", "Vip", "Lamp5")})
    return pd.DataFrame(out, index=types.index)


def cadwell_labels(meta: pd.DataFrame) -> pd.DataFrame:
    """Boolean label table of the Cadwell cells: ``eNGC`` (vs SBC-like) from ``major_type``."""
    return pd.DataFrame({CADWELL_LABEL: meta["major_type"].astype(str) == "eNGC"}, index=meta.index)


def gene_r(predicted: pd.DataFrame, measured: pd.DataFrame) -> pd.Series:
    """Per gene, Pearson r across cells; 0 where the prediction is constant (a gene with no
    coefficient left tells cells apart no better than chance), so models with different
    sparsity are compared on the same genes."""
    P = predicted.to_numpy(dtype=float)
    M = measured.loc[predicted.index, predicted.columns].to_numpy(dtype=float)
    r = np.where(varies_columns(P), _pearson_columns(P, M), 0.0)
    return pd.Series(r, index=predicted.columns, name="r")


def marker_auc(scores: pd.DataFrame, labels: pd.DataFrame, markers: dict[str, str]) -> dict:
    """ROC AUC of each label's marker gene (the label's cells vs the rest); labels not in
    ``labels``, with one class only, or whose marker is not scored, are left out."""
    out = {}
    for label, gene in markers.items():
        if label not in labels.columns:
            continue
        y = labels.loc[scores.index, label].to_numpy(dtype=bool)
        if gene in scores.columns and 0 < y.sum() < len(y):
            out[label] = float(roc_auc_score(y, scores[gene].to_numpy(dtype=float)))
    return out


def compare_models(
    predicted: dict[str, pd.DataFrame],
    measured: pd.DataFrame,
    labels: pd.DataFrame,
    markers: dict[str, str],
    r_threshold: float = 0.3,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare several models' predictions of the same cells on their shared genes.

    Parameters
    ----------
    predicted : dict of str to DataFrame
        Model name -> cells x genes.
    measured : DataFrame
        Cells x genes, measured log expression of (at least) those cells.
    labels : DataFrame
        Cells x labels, boolean.
    markers : dict of str to str
        Label -> marker gene.
    r_threshold : float
        Report the share of genes with r above this.

    Returns
    -------
    per_gene : DataFrame
        Shared genes (those that vary in the measured cells) x models: r.
    summary : DataFrame
        One row per model and one ``measured`` row (marker AUCs only): ``n_cells``,
        ``n_genes``, ``n_genes_constant`` (predicted constant: r counted as 0), ``median_r``,
        ``frac_r_above``, ``auc_<label>`` and ``auc_mean``.
    """
    cells = measured.index
    for p in predicted.values():
        cells = cells.intersection(p.index)
    genes = measured.columns
    for p in predicted.values():
        genes = genes.intersection(p.columns)
    meas = measured.loc[cells, genes]
    genes = genes[meas.to_numpy(dtype=float).std(axis=0) > 0]  # r undefined otherwise
    per_gene = pd.DataFrame(
        {m: gene_r(p.loc[cells, genes], meas) for m, p in predicted.items()}, index=genes
    )
    per_gene.index.name = "gene"
    rows = {}
    for m, p in {**predicted, MEASURED: measured}.items():
        auc = marker_auc(p.loc[cells], labels, markers)
        row = {"n_cells": len(cells), "n_genes": len(genes)}
        if m in per_gene:
            r, P = per_gene[m], p.loc[cells, genes].to_numpy(dtype=float)
            row |= {
                "n_genes_constant": int((~varies_columns(P)).sum()),
                "median_r": float(r.median()),
                "frac_r_above": float((r > r_threshold).mean()),
            }
        row |= {f"auc_{k}": v for k, v in auc.items()}
        row["auc_mean"] = float(np.mean(list(auc.values()))) if auc else np.nan
        rows[m] = row
    summary = pd.DataFrame.from_dict(rows, orient="index")
    summary.index.name = "model"
    return per_gene, summary


@dataclass
class CrossSourceResult:
    """The comparison table (``cell_set`` x ``model`` rows), the per-gene r table (long:
    ``cell_set``, ``gene``, one r column per model) and the summary dict for the report."""

    table: pd.DataFrame
    per_gene: pd.DataFrame
    summary: dict


def _stack(parts: dict[str, pd.DataFrame], level: str) -> pd.DataFrame:
    out = pd.concat(parts, names=["cell_set", level])
    return out.reset_index()


def cross_source_result(
    parts: dict[str, tuple[pd.DataFrame, pd.DataFrame]], notes: dict
) -> CrossSourceResult:
    """Gather :func:`compare_models` results of several cell sets (``{cell_set: (per_gene,
    summary)}``) into one table, one per-gene table and a report dict."""
    table = _stack({k: v[1] for k, v in parts.items()}, "model")
    per_gene = _stack({k: v[0] for k, v in parts.items()}, "gene")
    summary = {
        cell_set: {
            m: {k: (None if pd.isna(v) else v) for k, v in row.items()}
            for m, row in s.to_dict(orient="index").items()
        }
        for cell_set, (_, s) in parts.items()
    }
    return CrossSourceResult(table, per_gene, {**summary, "notes": notes})


def validate_cross_source(
    type_mean: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    type_store: ModelStore,
    cadwell: PatchSeqSet,
    cadwell_type_mean: pd.DataFrame,
    paired: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    paired_store: ModelStore,
    paired_oof: pd.DataFrame,
    r_threshold: float,
) -> CrossSourceResult:
    """The type-mean model vs the per-cell model on Scala's held-out cells and on Cadwell.

    Parameters
    ----------
    type_mean, paired : tuple of DataFrame
        Each model's training tables (features, targets genes x rows, types).
    type_store, paired_store : ModelStore
        Each model's store: its feature set of exactly the features a comparison needs
        predicts (:func:`~ephys2expr.validate.patchseq.cadwell.stored_feature_set`).
    cadwell : PatchSeqSet
        The Cadwell 2016 cells.
    cadwell_type_mean : DataFrame
        The type-mean model's Cadwell predictions (cells x genes, from
        :func:`~ephys2expr.validate.patchseq.cadwell.validate_patchseq`).
    paired_oof : DataFrame
        Genes x cells: the per-cell model's out-of-fold predictions (train stage).
    r_threshold : float
        Share of genes with r above this.
    """
    tf, tt, ttypes = type_mean
    pf, pt, ptypes = paired
    shared = pt.index.intersection(tt.index).intersection(paired_oof.index)
    feats = [f for f in tf.columns if f in pf.columns]
    log.info(
        "cross-source: %d shared genes; type-mean model on the %d features both have",
        len(shared),
        len(feats),
    )
    tm, tm_name = stored_feature_set(type_store, feats, shared, "type-mean model store")
    scala_tm = tm(pf[feats])
    scala = compare_models(
        {"type_mean": scala_tm, "per_cell": paired_oof.loc[shared].T},
        pt.loc[shared].T,
        scala_labels(ptypes),
        LABEL_MARKERS,
        r_threshold,
    )
    cells = cadwell_type_mean.index
    genes = shared.intersection(cadwell.expr.columns)
    pc, pc_name = stored_feature_set(paired_store, CADWELL_FEATURES, genes, "per-cell model store")
    cadwell_pc = pc(cadwell.features.loc[cells, CADWELL_FEATURES])
    cad = compare_models(
        {"type_mean": cadwell_type_mean[genes], "per_cell": cadwell_pc},
        cadwell.expr.loc[cells],
        cadwell_labels(cadwell.meta),
        {CADWELL_LABEL: CADWELL_MARKER},
        r_threshold,
    )
    notes = {
        "scala_type_mean_features": feats,
        "scala_type_mean_model": f"stored feature set '{tm_name}'",
        "cadwell_per_cell_model": f"stored feature set '{pc_name}'",
        "scala_per_cell": "out-of-fold predictions (outer CV by animal) of the per-cell store",
        "cadwell_features": list(paired_store.model(pc_name).features),
        "cadwell_labels": f"{CADWELL_LABEL} vs SBC-like (all Inh); marker {CADWELL_MARKER}",
        "constant_prediction_r": 0.0,
        "r_threshold": r_threshold,
    }
    return cross_source_result({"scala2021": scala, "cadwell2016": cad}, notes)


__all__ = [
    "CADWELL_LABEL",
    "CADWELL_MARKER",
    "LABEL_MARKERS",
    "MEASURED",
    "MODELS",
    "CrossSourceResult",
    "cadwell_labels",
    "compare_models",
    "cross_source_result",
    "gene_r",
    "marker_auc",
    "scala_labels",
    "validate_cross_source",
]
