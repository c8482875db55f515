"""Every feature set's per-gene quality for the predictions file, and each cell's trusted genes.

A cell's prediction is made by its feature set's model (obs ``feature_set``), so the quality
that applies to it is that set's: :func:`set_quality` gives, per quality measure, a genes x
sets table that the ``.h5ad`` stores in ``varm`` (``varm["cv_r2"]["no_tau_cap"]`` is the
out-of-fold r2 of the set without tau and cap). ``trusted`` is the README's rule: the gene's
out-of-fold r2 beats the baselines a user could run (mean and OLS:
:data:`~ephys2expr.train.cv.baselines.USER_BASELINES`) and its permutation q-value is below
``train.fdr_q``. Beating the Exc/Inh class baseline, which predicts each held-out cell from
its true class (an oracle no user has), is the separate ``beats_class_oracle``: Gad1, Gad2
and Slc17a7 lose only to it on Scala 2021 and are trusted. A
set trained without the null (``n_permutations=0``) has no q-values, so nothing of it is
trusted (``q_value`` NaN; uns ``ephys2expr.sets_without_null`` names such sets).

Each cell's trusted genes, one line (cells x genes, boolean)::

    adata.varm["trusted"][adata.obs["feature_set"]].T.set_axis(adata.obs_names)

which :func:`trusted_genes` is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ephys2expr.model.store import ORACLE_BASELINES, ModelStore

# The varm keys besides one beats_<baseline> per baseline of the store.
QUALITY_KEYS: tuple[str, ...] = ("cv_r2", "q_value", "trusted")


def _beats_columns(genes: pd.DataFrame) -> list[str]:
    return [c for c in genes.columns if str(c).startswith("beats_")]


def varm_key(column: str) -> str:
    """The varm key of a genes-table ``beats_<baseline>`` column: an oracle baseline's is
    ``beats_<baseline>_oracle`` (``beats_class_oracle``), so that no one takes it for a
    baseline a user could run."""
    name = column.removeprefix("beats_")
    return f"{column}_oracle" if name in ORACLE_BASELINES else column


def _required(beats: list[str]) -> list[str]:
    """The ``beats_*`` columns a trusted gene must pass: every one but the oracles' (the
    user baselines, :data:`~ephys2expr.train.cv.baselines.USER_BASELINES`, in a trained
    store)."""
    return [b for b in beats if b.removeprefix("beats_") not in ORACLE_BASELINES]


def set_quality(store: ModelStore, gene_idx: np.ndarray) -> dict[str, pd.DataFrame]:
    """Per quality measure, a genes (rows ``gene_idx`` of the store) x feature sets table.

    Keys: ``cv_r2``, ``beats_<baseline>`` (each baseline the store's genes table has; the
    oracle class baseline as ``beats_class_oracle``), ``q_value`` (NaN for a set without the
    null) and ``trusted`` (bool: q below ``fdr_q`` and beating every non-oracle baseline).
    ``fdr_q`` is the store's (``provenance["params"]["fdr_q"]``, 0.1 when it does not record one).
    """
    fdr_q = float(store.provenance.get("params", {}).get("fdr_q", 0.1))
    genes = pd.Index([str(g) for g in store.primary.genes.index[gene_idx]], name="gene")
    beats = _beats_columns(store.primary.genes)
    required = _required(beats)
    tables: dict[str, dict[str, np.ndarray]] = {k: {} for k in ("cv_r2", *beats, "q_value")}
    trusted = {}
    for name, model in store.feature_sets.items():
        g = model.genes.iloc[gene_idx]
        nan = np.full(len(g), np.nan)  # a store without CV columns (hand-built) has no quality
        tables["cv_r2"][name] = g["cv_r2"].to_numpy(dtype=float) if "cv_r2" in g else nan
        for b in beats:
            tables[b][name] = g[b].to_numpy(dtype=bool) if b in g else np.zeros(len(g), bool)
        q = g["q_value"].to_numpy(dtype=float) if "q_value" in g else nan
        tables["q_value"][name] = q
        beats_all = (
            np.logical_and.reduce([tables[b][name] for b in required]) if required else False
        )
        trusted[name] = np.nan_to_num(q, nan=np.inf) < fdr_q
        trusted[name] &= beats_all
    out = {varm_key(k): pd.DataFrame(v, index=genes) for k, v in tables.items()}
    out["trusted"] = pd.DataFrame(trusted, index=genes)
    return out


def sets_without_null(store: ModelStore) -> list[str]:
    """Feature sets of the store with no permutation q-values (trained with the null off)."""
    return [
        n
        for n, m in store.feature_sets.items()
        if "q_value" not in m.genes or m.genes["q_value"].isna().all()
    ]


def trusted_genes(adata) -> pd.DataFrame:
    """Cells x genes, True where the cell's prediction of the gene is trusted by its own
    feature set's CV (beats mean and OLS, q below ``train.fdr_q``)."""
    return adata.varm["trusted"][adata.obs["feature_set"]].T.set_axis(adata.obs_names)


__all__ = ["QUALITY_KEYS", "set_quality", "sets_without_null", "trusted_genes", "varm_key"]
