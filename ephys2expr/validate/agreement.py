"""Do predicted and measured cells of the same type look alike?

* :func:`type_agreement` - mean predicted profile of each cre-line group vs the mean
  measured profile of its matching transcriptomic group, matched vs unmatched pairs.
* :func:`type_agreement_all` - that comparison over all named groups, gene-centred and not,
  and within interneurons and within excitatory layers only.
* :func:`label_transfer` - Exc/Inh of predicted cells from their measured neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier

# Groups that match nothing: pan-GABAergic lines and Sncg/Igtp types ("other"), glia.
UNMATCHED_GROUPS = ("other", "Non-neuronal")


def group_means(expr: pd.DataFrame, groups: pd.Series, min_cells: int = 3) -> pd.DataFrame:
    """Mean profile (groups x genes) of the groups with at least ``min_cells`` cells."""
    g = groups.reindex(expr.index)
    counts = g.value_counts()
    keep = counts.index[counts >= min_cells]
    return expr[g.isin(keep).to_numpy()].groupby(g[g.isin(keep)]).mean().sort_index()


def corr_rows(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pearson r between every row of A and every row of B (NaN for constant rows)."""
    A = A - A.mean(axis=1, keepdims=True)
    B = B - B.mean(axis=1, keepdims=True)
    na = np.linalg.norm(A, axis=1)
    nb = np.linalg.norm(B, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (A @ B.T) / np.outer(na, nb)


def type_agreement(
    pred: pd.DataFrame,
    pred_group: pd.Series,
    meas: pd.DataFrame,
    meas_group: pd.Series,
    min_cells: int = 3,
    centre_genes: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Correlate group-mean predicted and measured profiles over shared genes.

    Parameters
    ----------
    pred, meas : DataFrame
        Cells x genes log2 expression (predicted / measured).
    pred_group, meas_group : Series
        Group of each cell (same vocabulary, e.g. from :func:`ephys2expr.taxonomy.type_group`).
    min_cells : int
        Groups with fewer cells in either source are left out.
    centre_genes : bool
        Subtract each gene's mean over the common groups within each source first, so the
        correlation is about which genes are higher or lower in a group than in the other
        groups, not about which genes are highly expressed in the cortex overall (that alone
        makes every pair correlate at r ~ 0.9).

    Returns
    -------
    corr : DataFrame
        Predicted groups (rows) x measured groups (columns), Pearson r.
    summary : dict
        ``n_genes``, ``groups``, ``matched_r`` (per group), medians of matched and unmatched r,
        and ``top1`` (fraction of predicted groups whose best measured match is their own).
    """
    genes = pred.columns.intersection(meas.columns)
    if len(genes) < 3:
        raise ValueError(f"only {len(genes)} shared genes")
    pm = group_means(pred[genes], pred_group, min_cells)
    mm = group_means(meas[genes], meas_group, min_cells)
    common = pm.index.intersection(mm.index)
    if len(common) < 2:
        raise ValueError(f"fewer than 2 groups in both sources: {list(common)}")
    pm, mm = pm.loc[common], mm.loc[common]
    if centre_genes:
        pm = pm - pm.mean(axis=0)
        mm = mm - mm.mean(axis=0)
    r = corr_rows(pm.to_numpy(), mm.to_numpy())
    corr = pd.DataFrame(
        r, index=pd.Index(common, name="predicted"), columns=pd.Index(common, name="measured")
    )
    diag = np.diag(r)
    off = r[~np.eye(len(common), dtype=bool)]
    summary = {
        "n_genes": int(len(genes)),
        "groups": [str(g) for g in common],
        "matched_r": {str(g): float(v) for g, v in zip(common, diag, strict=True)},
        "matched_r_median": float(np.nanmedian(diag)),
        "unmatched_r_median": float(np.nanmedian(off)),
        "top1": float(
            np.mean(np.nanargmax(np.nan_to_num(r, nan=-np.inf), axis=1) == np.arange(len(common)))
        ),
    }
    return corr, summary


@dataclass
class TypeAgreement:
    """Type agreement of predicted and measured cells over their shared genes.

    Attributes
    ----------
    corr : DataFrame
        Gene-centred group-mean correlations, predicted groups x measured groups.
    summary : dict
        :func:`type_agreement`'s summary of ``corr``.
    uncentred : dict
        The same without gene centring (``matched_r_median``, ``unmatched_r_median``,
        ``top1``).
    within : dict
        ``inh`` / ``exc``: the comparison restricted to interneuron subclasses / excitatory
        layers (the Exc/Inh split dominates the numbers over all groups).
    """

    corr: pd.DataFrame
    summary: dict
    uncentred: dict
    within: dict

    def table(self) -> pd.DataFrame:
        """One row per group: its matched r and its best unmatched r (the plot's table)."""
        corr = self.corr
        off = corr.where(~np.eye(len(corr), dtype=bool))
        return pd.DataFrame(
            {
                "group": corr.index,
                "matched_r": np.diag(corr.to_numpy()),
                "best_unmatched_r": off.max(axis=1).to_numpy(),
            }
        )


def type_agreement_all(
    pred: pd.DataFrame,
    pred_group: pd.Series,
    meas: pd.DataFrame,
    meas_group: pd.Series,
    min_cells: int = 3,
) -> TypeAgreement:
    """:func:`type_agreement` over the named groups, uncentred, and within each class."""

    def named(g: pd.Series) -> pd.Series:
        return g[~g.isin(list(UNMATCHED_GROUPS))]

    args = (pred, named(pred_group), meas, named(meas_group))
    corr, summary = type_agreement(*args, min_cells=min_cells)
    _, raw = type_agreement(*args, min_cells=min_cells, centre_genes=False)
    within = {}
    for cls, keep in (
        ("inh", lambda g: ~g.str.startswith("Exc")),
        ("exc", lambda g: g.str.startswith("Exc")),
    ):
        sub = lambda g, keep=keep: named(g)[keep(named(g).astype(str))]  # noqa: E731
        _, w = type_agreement(pred, sub(pred_group), meas, sub(meas_group), min_cells=min_cells)
        within[cls] = {
            k: w[k] for k in ("matched_r", "matched_r_median", "unmatched_r_median", "top1")
        }
    uncentred = {k: raw[k] for k in ("matched_r_median", "unmatched_r_median", "top1")}
    return TypeAgreement(corr=corr, summary=summary, uncentred=uncentred, within=within)


def label_transfer(
    X: np.ndarray,
    source: np.ndarray,
    labels: np.ndarray,
    query: str = "predicted",
    ref: str = "measured",
    k: int = 15,
) -> dict:
    """Classify each ``query`` cell's label from its ``k`` nearest ``ref`` cells.

    Query cells with a missing label (None/NaN/empty) are not scored. The chance baselines
    are the accuracy of always answering the reference's majority class and a balanced
    accuracy of 1 / n_classes.
    """
    source = np.asarray(source)
    labels = pd.Series(labels, dtype="string").fillna("").to_numpy(dtype=str)
    r = (source == ref) & (labels != "")
    q = (source == query) & (labels != "")
    clf = KNeighborsClassifier(n_neighbors=int(min(k, r.sum()))).fit(X[r], labels[r])
    pred = clf.predict(X[q])
    truth = labels[q]
    classes, counts = np.unique(labels[r], return_counts=True)
    majority = classes[np.argmax(counts)]
    return {
        "n_query": int(q.sum()),
        "n_ref": int(r.sum()),
        "accuracy": float(accuracy_score(truth, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(truth, pred)),
        "chance_accuracy": float(np.mean(truth == majority)),
        "chance_balanced_accuracy": float(1.0 / len(np.unique(truth))),
        "query_class_counts": {
            str(c): int(n) for c, n in zip(*np.unique(truth, return_counts=True), strict=True)
        },
    }


__all__ = [
    "TypeAgreement",
    "corr_rows",
    "group_means",
    "label_transfer",
    "type_agreement",
    "type_agreement_all",
]
