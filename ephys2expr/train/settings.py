"""The ``train:`` section of ``params.yaml``: every training setting, defined once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ephys2expr.errors import InputError
from ephys2expr.features import ALL_FEATURES, CADWELL_FEATURES
from ephys2expr.model.estimator import MultiGeneElasticNet
from ephys2expr.model.path import PENALTIES, alpha_grid
from ephys2expr.settings import NAME, Settings, coerce, load_yaml, setting
from ephys2expr.train.feature_sets import FULL

log = logging.getLogger("ephys2expr")

CV_SCHEMES = ("auto", "loo", "kfold", "group", "group_kfold")
# Feature sets a user wants besides the derived ones (train.feature_sets), as the features
# each leaves out of the source's list (names the source lacks are ignored). The train stage
# derives the rest from the data (ephys2expr.train.feature_sets.derive_feature_sets): the
# full set plus every missing pattern of the tables cells.inputs names with at least
# cells.min_features features. "no_adratio" is the type-mean model on the features the Scala
# cells have (validate's cross-source comparison; the same as "full" for a source without
# adratio, so not trained twice); "cadwell" keeps Cadwell et al. 2016's seven features
# (features.CADWELL_FEATURES, checked), which validate uses for its Patch-seq comparison.
# Validation only predicts with stored sets.
FEATURE_SETS = {
    "no_adratio": ["adratio"],
    "cadwell": ["rheo", "maxfreq", "cap", "adratio", "sag"],
}
WEIGHTINGS = ("none", "cells")
MODELS = ("lasso", "mixture", "best")


@dataclass
class TrainSettings(Settings):
    """How the per-gene models are fitted and evaluated (``params.yaml`` ``train:``).

    ``train:`` holds the shared values; a source's section ``train_<source>`` (e.g.
    ``train_scala2021``) only the keys that differ for it, checked the same way, errors
    naming that section. Build with ``TrainSettings.from_params(path, overrides, source)``.
    :meth:`as_dict` (all fields, in this order) is stored in ``model.json`` as the
    provenance of a model store.
    """

    SECTION: ClassVar[str] = "train"
    # train_<source> sections override keys for one source (train@<source> in dvc.yaml)
    PER_SOURCE: ClassVar[bool] = True
    # Genes per solver block (bounds memory; results do not depend on it). Not a setting.
    CHUNK_SIZE: ClassVar[int] = 8192

    model: str = setting(
        "best",
        "lasso (the penalised linear model) | mixture (expression through identity: sum over "
        "classes of P(class | ephys) x class mean, family or type level or their blend, per "
        "gene by inner CV) | best (per gene, whichever of those the inner CV prefers); "
        "per-cell sources only: type-mean sources have no cells to classify and stay lasso",
    )
    penalty: str = setting("lasso", "lasso | elasticnet | ridge")
    l1_ratio: float = setting(
        0.5, "elastic-net mixing (elasticnet only; in [0, 1] whatever the penalty)"
    )
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
    feature_sets: dict[str, list[str]] = setting(
        FEATURE_SETS,
        "feature sets besides the derived ones (the full set and every missing pattern of "
        "cells.inputs with >= cells.min_features features): name -> the features the set "
        "leaves out of the source's list (names the source lacks are ignored); a set that "
        "leaves out nothing names the full set",
    )
    min_set_cells: int = setting(
        10,
        "a derived feature set that only a missing pattern of fewer cells of the cells.inputs "
        "tables needs is trained without its own permutation null (its q-values are NaN, "
        "nothing of it is trusted; the report's sets_without_null names it)",
    )

    def check(self) -> None:
        if self.model not in MODELS:
            raise InputError(f"{self.where('model')}: {self.model!r} is not one of {MODELS}")
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
        # checked for every penalty: a setting that does not apply is still recorded in the
        # model store's provenance (and reused by later stages), so it must be a valid value
        if not 0.0 <= self.l1_ratio <= 1.0:
            raise InputError(f"{self.where('l1_ratio')}: {self.l1_ratio} is not in [0, 1]")
        if self.penalty == "elasticnet" and not self.l1_ratio > 0.0:
            raise InputError(
                f"{self.where('l1_ratio')}: {self.l1_ratio} is not in (0, 1] (elasticnet)"
            )
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
        if self.min_set_cells < 1:
            raise InputError(f"{self.where('min_set_cells')}: {self.min_set_cells} is not >= 1")
        if not 0 <= self.seed < 2**32:  # what numpy's and scikit-learn's generators take
            raise InputError(
                f"{self.where('seed')}: {self.seed} is not a whole number from 0 to 2**32 - 1"
            )
        for key in ("n_permutations", "null_stop_after"):
            if getattr(self, key) < 0:
                raise InputError(f"{self.where(key)}: {getattr(self, key)} is negative")
        if not 0 < self.fdr_q < 1:
            raise InputError(f"{self.where('fdr_q')}: {self.fdr_q} is not in (0, 1)")
        self._check_feature_sets()

    def _check_feature_sets(self) -> None:
        where = self.where("feature_sets")
        sets = self.feature_sets
        if isinstance(sets, str):  # --set feature_sets="{full: [], no_tau: [tau]}"
            sets = load_yaml(sets, where)
        if sets is None:
            sets = {}
        if not isinstance(sets, dict):
            raise InputError(f"{where}: expected a mapping of set name -> features left out")
        out = {}
        for name, drop in sets.items():
            name = str(name)
            if not NAME.match(name):
                raise InputError(f"{where}: set name {name!r} (use letters, digits, '_', '-', '.')")
            drop = coerce([] if drop is None else drop, list[str], f"{where}.{name}")
            unknown = [d for d in drop if d not in ALL_FEATURES]
            if unknown:
                raise InputError(
                    f"{where}.{name}: unknown feature {unknown[0]!r} (known: {ALL_FEATURES})"
                )
            out[name] = drop
        # the full set (leaves out nothing) comes first, wherever it is listed: YAML mappings
        # get re-sorted by tools (yaml.safe_dump, some editors)
        full = [name for name, drop in out.items() if not drop]
        if len(full) > 1:
            raise InputError(
                f"{where}: at most one set may leave out nothing (it names the full model); "
                f"found {full}"
            )
        self.feature_sets = {**{n: [] for n in full}, **{n: d for n, d in out.items() if d}}

    def resolve_feature_sets(
        self, features: list[str], derived: dict[str, list[str]] | None = None
    ) -> dict[str, list[str]]:
        """Each set's features (in ``features`` order) for a source with ``features``.

        The full set comes first, then the ``derived`` sets (name -> features kept, from
        :func:`~ephys2expr.train.feature_sets.derive_feature_sets`), then this setting's
        sets. A derived set with the features of one of this setting's sets takes that
        set's name (validate finds its sets by their features). A set that leaves out
        every feature is an error; a set with the same features as an earlier one (it
        leaves out only names the source lacks) is skipped, with a log line.
        """
        user = {n: [f for f in features if f not in d] for n, d in self.feature_sets.items()}
        full = next((n for n, d in self.feature_sets.items() if not d), FULL)
        named = {tuple(k): n for n, k in reversed(user.items())}
        order = [(full, list(features))]
        for name, kept in (derived or {}).items():
            kept = [f for f in features if f in kept]
            order.append((named.get(tuple(kept), name), kept))
        order += [(n, k) for n, k in user.items() if n != full]
        out: dict[str, list[str]] = {}
        for name, kept in order:
            cadwell = [f for f in features if f in CADWELL_FEATURES]
            if name == "cadwell" and kept != cadwell:
                raise InputError(
                    f"{self.where('feature_sets')}.cadwell: keeps {kept}, not Cadwell 2016's "
                    f"features {cadwell} (ephys2expr.features.CADWELL_FEATURES)"
                )
            if not kept:
                raise InputError(
                    f"{self.where('feature_sets')}.{name}: leaves out every feature of {features}"
                )
            if name in out and out[name] != kept:
                raise InputError(
                    f"{self.where('feature_sets')}.{name}: the name of a derived set with other "
                    f"features ({out[name]}); choose another name"
                )
            same = [other for other, cols in out.items() if cols == kept]
            if same and same[0] == name:
                continue
            if same:
                log.info(
                    "feature set %r has the same features as %r here: not trained again",
                    name,
                    same[0],
                )
                continue
            out[name] = kept
        return out

    @property
    def alphas(self) -> np.ndarray:
        """The alpha path searched by ``alpha: auto``."""
        return alpha_grid(self.alpha_max, self.alpha_min, self.n_alphas)

    def estimator(
        self, alpha=None, n_rows: int | None = None, inner_score: bool = False
    ) -> MultiGeneElasticNet:
        """A :class:`MultiGeneElasticNet` with these settings (``alpha`` overrides).

        ``n_rows`` (rows the estimator will be fitted on) shrinks its gene block when the
        inner CV's (genes x alphas x validation rows) temporaries would exceed ~128 MB - only
        with thousands of rows (per-cell training); results do not depend on the block.
        """
        chunk = self.CHUNK_SIZE
        if n_rows:
            n_va = -(-n_rows // self.inner_folds)
            chunk = min(chunk, max(64, (1 << 24) // (self.n_alphas * n_va)))
        alpha = self.alpha if alpha is None else alpha
        alphas = self.alphas
        if inner_score and not isinstance(alpha, str) and np.ndim(alpha) == 0:
            alpha, alphas = "auto", np.array([float(alpha)])
        return MultiGeneElasticNet(
            penalty=self.penalty,
            alpha=alpha,
            l1_ratio=self.l1_ratio,
            alphas=alphas,
            inner_cv=self.inner_folds,
            random_state=self.seed,
            chunk_size=chunk,
        )


def trained_settings(store) -> TrainSettings:
    """The settings a model store was trained with (its ``provenance["params"]``)."""
    params = store.provenance.get("params")
    if not isinstance(params, dict):
        raise InputError("model store: model.json has no provenance params (retrain it)")
    return TrainSettings.from_dict(params, where="model.json provenance")


__all__ = [
    "CV_SCHEMES",
    "FEATURE_SETS",
    "MODELS",
    "WEIGHTINGS",
    "TrainSettings",
    "trained_settings",
]
