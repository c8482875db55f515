"""Settings of the ``validate`` stage (the ``validate:`` section of ``params.yaml``).

The Patch-seq model is fitted with the settings the model store was trained with (read from
the store's provenance, :class:`ephys2expr.train.settings.TrainSettings`), not with a second
copy of the ``train:`` keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ephys2expr.errors import InputError
from ephys2expr.settings import Settings, setting

REFERENCES = ("rda", "geo")


@dataclass
class ValidateSettings(Settings):
    """Which predictions to validate, the measured references and the embedding knobs."""

    SECTION: ClassVar[str] = "validate"
    MOVED: ClassVar[dict[str, str]] = {"n_jobs": "validate.embedding_workers"}

    predictions: str = setting(
        "aibs_v6", "data/predictions/<name>.h5ad (or .parquet) compared with measured expression"
    )
    reference: str = setting(
        "rda", "rda = the 170-gene Tasic 2016 RData; geo = full GSE71585 layout"
    )
    geo_counts: str = setting("GSE71585_RefSeq_counts.csv", "GEO counts CSV (reference=geo)")
    geo_clustering: str = setting(
        "GSE71585_Clustering_Results.csv", "GEO clustering CSV (reference=geo)"
    )
    cv_r2_threshold: float = setting(0.3, "genes with train CV r2 above: 'good in CV'")
    cross_r_threshold: float = setting(
        0.3, "cross-source comparison: share of genes with per-gene r above this"
    )
    n_neighbors: int = setting(15, "k for mixing, label transfer and UMAP")
    n_pcs: int = setting(10, "dimensions of the joint predicted + measured space")
    max_cells: int = setting(400, "per-source subsample for the 2-D embeddings (0 = all)")
    tsne_max_iter: int = setting(500, "t-SNE iterations")
    min_group_cells: int = setting(3, "smallest group in type agreement")
    embedding_workers: int = setting(
        2, "processes for the embeddings: 2 = UMAPs in a worker process beside the t-SNEs"
    )
    seed: int = setting(0, "seed for PCA, t-SNE, UMAP and subsampling")

    def check(self) -> None:
        if not self.predictions:
            raise InputError(f"{self.where('predictions')}: empty")
        if self.reference not in REFERENCES:
            raise InputError(
                f"{self.where('reference')}: {self.reference!r} must be 'rda' or 'geo'"
            )
        if not -1.0 <= self.cross_r_threshold < 1.0:
            raise InputError(
                f"{self.where('cross_r_threshold')}: {self.cross_r_threshold} is not in [-1, 1)"
            )
        for key, low in (
            ("n_neighbors", 1),
            ("n_pcs", 1),
            ("max_cells", 0),
            ("tsne_max_iter", 250),
            ("min_group_cells", 1),
            ("embedding_workers", 1),
            ("seed", 0),
        ):
            if getattr(self, key) < low:
                raise InputError(f"{self.where(key)}: {getattr(self, key)} is below {low}")
        if self.seed >= 2**32:  # what numpy's generators take
            raise InputError(f"{self.where('seed')}: {self.seed} is above 2**32 - 1")


__all__ = ["REFERENCES", "ValidateSettings"]
