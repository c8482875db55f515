"""The ``train:`` section of ``params.yaml``: every training setting, defined once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ephys2expr.errors import InputError
from ephys2expr.model.estimator import PENALTIES, MultiGeneElasticNet, alpha_grid
from ephys2expr.settings import Settings, setting

CV_SCHEMES = ("auto", "loo", "kfold", "group", "group_kfold")
WEIGHTINGS = ("none", "cells")


@dataclass
class TrainSettings(Settings):
    """How the per-gene models are fitted and evaluated (``params.yaml`` ``train:``).

    Build with ``TrainSettings.from_params(path, overrides)``. :meth:`as_dict` (all fields,
    in this order) is stored in ``model.json`` as the provenance of a model store.
    """

    SECTION: ClassVar[str] = "train"
    # Genes per solver block (bounds memory; results do not depend on it). Not a setting.
    CHUNK_SIZE: ClassVar[int] = 8192

    penalty: str = setting("lasso", "lasso | elasticnet | ridge")
    l1_ratio: float = setting(0.5, "elastic-net mixing (elasticnet only)")
    alpha: float | str = setting(
        "auto", "a number, or 'auto' = chosen per gene by inner CV over the alpha path"
    )
    n_alphas: int = setting(30, "length of the alpha path for 'auto' (log-spaced)")
    alpha_min: float = setting(1e-3, "smallest alpha of the path")
    alpha_max: float = setting(10.0, "largest alpha of the path")
    inner_folds: int = setting(5, "inner k-fold for 'auto'")
    cv: str = setting(
        "auto",
        "outer CV: auto (loo for type means, group_kfold for per-cell data) | loo | kfold | "
        "group (leave-one-broad-type-out) | group_kfold (k-fold keeping each animal whole; "
        "the inner alpha search is then grouped by animal too)",
    )
    n_folds: int = setting(5, "outer folds for cv=kfold and cv=group_kfold")
    seed: int = setting(0, "seed of fold splits and permutations")
    sample_weight: str = setting("none", "none | cells (cell-count weights)")
    n_permutations: int = setting(1000, "permutation null size (0 = off)")
    null_stop_after: int = setting(
        10, "stop permuting a gene after this many null r2 >= observed (0 = never)"
    )
    fdr_q: float = setting(0.1, "Benjamini-Hochberg level")

    def check(self) -> None:
        if self.penalty not in PENALTIES:
            raise InputError(f"{self.where('penalty')}: {self.penalty!r} is not one of {PENALTIES}")
        if isinstance(self.alpha, str):
            if self.alpha.strip().lower() != "auto":
                raise InputError(f"{self.where('alpha')}: {self.alpha!r} is not a number or 'auto'")
            self.alpha = "auto"
        elif not (np.isfinite(self.alpha) and self.alpha >= 0):
            raise InputError(f"{self.where('alpha')}: {self.alpha} must be a non-negative number")
        elif self.penalty == "ridge" and self.alpha <= 0:
            raise InputError(f"{self.where('alpha')}: ridge needs alpha > 0")
        if self.penalty == "elasticnet" and not 0.0 < self.l1_ratio <= 1.0:
            raise InputError(f"{self.where('l1_ratio')}: {self.l1_ratio} is not in (0, 1]")
        for key in ("alpha_min", "alpha_max"):
            if not getattr(self, key) > 0:
                raise InputError(f"{self.where(key)}: {getattr(self, key)} must be > 0")
        if self.alpha_min > self.alpha_max:
            raise InputError(
                f"{self.where('alpha_min')}: {self.alpha_min} is larger than alpha_max "
                f"{self.alpha_max}"
            )
        if self.n_alphas < 1:
            raise InputError(f"{self.where('n_alphas')}: {self.n_alphas} must be >= 1")
        for key in ("inner_folds", "n_folds"):
            if getattr(self, key) < 2:
                raise InputError(f"{self.where(key)}: {getattr(self, key)} must be >= 2")
        if self.cv not in CV_SCHEMES:
            raise InputError(f"{self.where('cv')}: {self.cv!r} is not one of {CV_SCHEMES}")
        if self.sample_weight not in WEIGHTINGS:
            raise InputError(
                f"{self.where('sample_weight')}: {self.sample_weight!r} is not one of {WEIGHTINGS}"
            )
        for key in ("n_permutations", "null_stop_after"):
            if getattr(self, key) < 0:
                raise InputError(f"{self.where(key)}: {getattr(self, key)} is negative")
        if not 0 < self.fdr_q < 1:
            raise InputError(f"{self.where('fdr_q')}: {self.fdr_q} is not in (0, 1)")

    @property
    def alphas(self) -> np.ndarray:
        """The alpha path searched by ``alpha: auto``."""
        return alpha_grid(self.alpha_max, self.alpha_min, self.n_alphas)

    def estimator(self, alpha=None, n_rows: int | None = None) -> MultiGeneElasticNet:
        """A :class:`MultiGeneElasticNet` with these settings (``alpha`` overrides).

        ``n_rows`` (rows the estimator will be fitted on) shrinks its gene block when the
        inner CV's (genes x alphas x validation rows) temporaries would exceed ~128 MB - only
        with thousands of rows (per-cell training); results do not depend on the block.
        """
        chunk = self.CHUNK_SIZE
        if n_rows:
            n_va = -(-n_rows // self.inner_folds)
            chunk = min(chunk, max(64, (1 << 24) // (self.n_alphas * n_va)))
        return MultiGeneElasticNet(
            penalty=self.penalty,
            alpha=self.alpha if alpha is None else alpha,
            l1_ratio=self.l1_ratio,
            alphas=self.alphas,
            inner_cv=self.inner_folds,
            random_state=self.seed,
            chunk_size=chunk,
        )


__all__ = ["CV_SCHEMES", "WEIGHTINGS", "TrainSettings"]
