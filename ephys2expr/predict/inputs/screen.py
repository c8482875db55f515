"""Screen cells against the model's training rows: feature sets, missing features,
extrapolation and the out-of-distribution score.

:class:`CellScreen` gives each cell the feature set it is predicted with (the best set of
the store that its features allow: :func:`rank_feature_sets`), or drops or imputes cells
with missing features, flags values outside the training range and scores how far each
cell is from the training rows (``ood_score``, ``ood``: :mod:`ephys2expr.model.ood`);
:func:`screen_summary` and :func:`extrapolation_by_feature` count what it found (for the
report and the log).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ephys2expr.cell_inputs import CellSettings
from ephys2expr.model.ood import NeighborScore, range_excess
from ephys2expr.model.store import ModelStore
from ephys2expr.predict.settings import MISSING_POLICIES, PredictSettings
from ephys2expr.scaling import standardise

DEFAULTS = PredictSettings()  # constructor defaults: the settings' (defined once there)
CELL_DEFAULTS = CellSettings()

# Per-cell flags added by the screen, written beside the metadata.
FLAG_COLUMNS: list[str] = [
    "feature_set",
    "features_used",
    "imputed",
    "imputed_features",
    "extrapolated",
    "n_extrapolated",
    "extrapolated_features",
    "max_range_excess",
    "ood_score",
    "ood",
]


@dataclass
class ScreenResult:
    """What :meth:`CellScreen.transform` found.

    Attributes
    ----------
    X : numpy.ndarray
        Kept cells x the store's features, original units (imputed values filled in; a
        feature the cell's set does not use holds the training mean: its coefficient is 0).
    kept : numpy.ndarray of bool
        Per input cell: predicted (True) or dropped for missing features (False).
    flags : pandas.DataFrame
        Per input cell: ``n_missing``, ``missing_features``, then :data:`FLAG_COLUMNS`
        (``feature_set`` is ``""`` for a dropped cell) and ``reason`` (why a cell is not
        predicted, ``""`` for a predicted one).
    cell_sets : numpy.ndarray of int
        Per kept cell: its feature set, as a position in ``set_names``.
    set_names : list of str
        The store's feature sets, in store order.
    """

    X: np.ndarray
    kept: np.ndarray
    flags: pd.DataFrame
    cell_sets: np.ndarray
    set_names: list[str]


def predictable_columns(genes: pd.DataFrame) -> list[str]:
    """Boolean ``beats_*`` columns of the genes table (out-of-fold r2 beats a baseline)."""
    return [
        c
        for c in genes.columns
        if str(c).startswith("beats_") and pd.api.types.is_bool_dtype(genes[c])
    ]


def rank_feature_sets(store: ModelStore) -> list[str]:
    """The store's feature sets, best first: the order in which a cell's set is chosen.

    A cell is predicted by the first set in this order whose features it has. Best = the
    most genes whose out-of-fold r2 beats every baseline (all ``beats_*`` columns of the
    set's genes table: the quality the train stage reports per set), then more features,
    then store order. More features are not always better in CV (they can overfit), so the
    count of genes beating every baseline decides; on the real data the full set is best.
    """

    def key(item):
        pos, (name, model) = item
        cols = predictable_columns(model.genes)
        quality = int(model.genes[cols].all(axis=1).sum()) if cols else 0
        return (-quality, -len(model.features), pos)

    return [name for _, (name, _) in sorted(enumerate(store.feature_sets.items()), key=key)]


class CellScreen:
    """Handle missing features and flag extrapolation, using the model's training rows.

    Parameters
    ----------
    missing : {"feature_set", "drop", "impute"}
        ``feature_set``: each cell is predicted by the feature set of exactly the store's
        features it has (never fewer: a reduced-feature model); a cell with fewer than
        ``min_features`` of them, or whose set the store lacks (see
        :func:`~ephys2expr.predict.on_demand.add_missing_sets`), is not predicted.
        ``drop``: cells with any missing feature of the full set are not predicted (the
        original project's behaviour). ``impute``: missing values are set to the training
        mean of that feature (the scaler mean of the final fit) and the cell is flagged.
        ``drop`` and ``impute`` use the full set only.
    tolerance : float
        A value is *extrapolated* when it lies more than ``tolerance x (max - min)``
        outside the training range ``[min, max]`` of its feature. Imputed values never
        count as extrapolated.
    ood_neighbors : int
        ``k`` of the out-of-distribution score: a cell's ``ood_score`` is the percentile of
        its mean distance to its ``k`` nearest training rows (the features of its feature
        set, standardised by that set's scaler) among the training rows' own leave-one-out
        distances (:class:`~ephys2expr.model.ood.NeighborScore`); NaN when the store holds
        no training rows (schema 4 and older).
    ood_percentile : float
        ``ood`` = ``ood_score`` above it.
    min_features : int
        ``feature_set`` only: cells with fewer of the store's features are not predicted.

    The stage takes both from :class:`~ephys2expr.predict.settings.PredictSettings`,
    which checks them.

    Attributes
    ----------
    features_ : list of str
    mean_, min_, max_, range_, lower_, upper_ : numpy.ndarray
        Imputation values, the training range and the tolerated bounds, per feature.
    set_names_ : list of str
        The store's feature sets, store order.
    set_masks_ : numpy.ndarray of bool, shape (n_sets, n_features)
        Which features each set uses.
    preference_ : list of int
        Positions in ``set_names_``, best first (:func:`rank_feature_sets`).
    scorers_ : list of NeighborScore or None
        Per set (``set_names_`` order): the fitted score, None without training rows.
    """

    def __init__(
        self,
        missing: str = DEFAULTS.missing,
        tolerance: float = DEFAULTS.extrapolation_tolerance,
        ood_neighbors: int = DEFAULTS.ood_neighbors,
        ood_percentile: float = DEFAULTS.ood_percentile,
        min_features: int = CELL_DEFAULTS.min_features,
    ) -> None:
        self.min_features = min_features
        self.missing = missing
        self.tolerance = tolerance
        self.ood_neighbors = ood_neighbors
        self.ood_percentile = ood_percentile

    def fit(self, store: ModelStore) -> CellScreen:
        """Take feature names, means and ranges from ``store``; returns self."""
        if self.missing not in MISSING_POLICIES:
            raise ValueError(f"missing={self.missing!r}: expected one of {MISSING_POLICIES}")
        self.features_ = list(store.features)
        self.mean_ = store.primary.scaler_mean.copy()
        self.min_, self.max_ = store.primary.feature_min.copy(), store.primary.feature_max.copy()
        self.range_ = self.max_ - self.min_
        self.lower_ = store.primary.feature_min - self.tolerance * self.range_
        self.upper_ = store.primary.feature_max + self.tolerance * self.range_
        sets = store.feature_sets
        self.set_names_ = list(sets)
        self.set_masks_ = np.array([np.isin(self.features_, m.features) for m in sets.values()])
        self.preference_ = [self.set_names_.index(n) for n in rank_feature_sets(store)]
        self.set_scalers_ = [(m.scaler_mean, m.scaler_scale) for m in sets.values()]
        self.scorers_ = [self._scorer(store, m) for m in sets.values()]
        return self

    def _scorer(self, store: ModelStore, model: ModelStore) -> NeighborScore | None:
        """The fitted OOD score of one feature set (its features, its scaler)."""
        if store.train_features is None:
            return None
        rows = store.train_features[model.features].to_numpy(dtype=float)
        return NeighborScore(self.ood_neighbors).fit(
            standardise(rows, model.scaler_mean, model.scaler_scale)
        )

    def ood_scores(self, filled: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """Per cell: its OOD score by its feature set (NaN for cells not predicted or when
        the store holds no training rows)."""
        out = np.full(len(filled), np.nan)
        for s, scorer in enumerate(self.scorers_):
            rows = chosen == s
            if scorer is None or not rows.any():
                continue
            mask = self.set_masks_[s]
            X = standardise(filled[rows][:, mask], *self.set_scalers_[s])
            out[rows] = scorer.score(X)
        return out

    def choose_sets(self, present: np.ndarray) -> np.ndarray:
        """Per cell (rows of the boolean ``present``, cells x features): the position in
        ``set_names_`` of the set of exactly its features, or -1 (none, or fewer than
        ``min_features``)."""
        if self.missing != "feature_set":  # the full set, for cells that have (or get) it all
            return np.where(present.all(axis=1) | (self.missing == "impute"), 0, -1)
        chosen = np.full(len(present), -1, dtype=np.int64)
        for s in reversed(self.preference_):  # equal masks: the best-ranked set wins
            chosen[(present == self.set_masks_[s]).all(axis=1)] = s
        chosen[present.sum(axis=1) < self.min_features] = -1
        return chosen

    def reasons(self, present: np.ndarray, chosen: np.ndarray) -> list[str]:
        """Per cell: one line saying why it is not predicted (``""`` if it is)."""
        n_all = len(self.features_)
        out = []
        for row, s in zip(present, chosen, strict=True):
            n = int(row.sum())
            if s >= 0:
                out.append("")
            elif self.missing == "drop":
                out.append(
                    f"missing {n_all - n} of the full set's {n_all} features (missing: drop)"
                )
            elif n < self.min_features:
                out.append(
                    f"fewer than cells.min_features = {self.min_features} of the "
                    f"store's {n_all} features (has {n})"
                )
            else:
                out.append("no feature set of the store has exactly its features")
        return out

    def transform(self, features: pd.DataFrame) -> ScreenResult:
        """Screen cells (rows of ``features``, columns at least ``features_``)."""
        values = features.reindex(columns=self.features_).to_numpy(dtype=float)
        names = np.asarray(self.features_, dtype=object)
        nan = np.isnan(values)
        n_missing = nan.sum(axis=1)
        chosen = self.choose_sets(~nan)
        kept = chosen >= 0
        used = self.set_masks_[np.maximum(chosen, 0)] & kept[:, None]  # features each cell uses
        filled = np.where(nan, self.mean_, values)

        below = (filled < self.lower_) & ~nan & used
        above = (filled > self.upper_) & ~nan & used
        outside = below | above
        # How far beyond the training range, in units of that range (0 inside it).
        excess = np.where(outside, range_excess(filled, self.min_, self.max_), 0.0)
        set_label = np.array(self.set_names_ + [""], dtype=object)[chosen]
        used_label = np.array([",".join(names[m]) for m in self.set_masks_] + [""], dtype=object)[
            chosen
        ]
        score = self.ood_scores(filled, chosen)
        flags = pd.DataFrame(
            {
                "feature_set": set_label,
                "features_used": used_label,
                "reason": self.reasons(~nan, chosen),
                "n_missing": n_missing.astype(np.int64),
                "missing_features": [",".join(names[row]) for row in nan],
                "imputed": (n_missing > 0) & kept & (self.missing == "impute"),
                "imputed_features": [
                    ",".join(names[row]) if k and self.missing == "impute" else ""
                    for row, k in zip(nan, kept, strict=True)
                ],
                "extrapolated": outside.any(axis=1),
                "n_extrapolated": outside.sum(axis=1).astype(np.int64),
                "extrapolated_features": [",".join(names[row]) for row in outside],
                "max_range_excess": excess.max(axis=1, initial=0.0),
                "ood_score": score,
                "ood": np.nan_to_num(score, nan=-np.inf) > self.ood_percentile,
            },
            index=features.index,
        )
        flags = flags[["n_missing", "missing_features", "reason", *FLAG_COLUMNS]]
        return ScreenResult(filled[kept], kept, flags, chosen[kept], list(self.set_names_))


def _count_names(texts) -> dict[str, int]:
    """How often each name occurs in comma-joined name lists (the flag columns' format)."""
    counts: dict[str, int] = {}
    for text in texts:
        for name in filter(None, text.split(",")):
            counts[name] = counts.get(name, 0) + 1
    return counts


def screen_summary(
    meta_all: pd.DataFrame, flags: pd.DataFrame, kept: np.ndarray, set_names: list[str]
) -> dict:
    """Counts of cells in/predicted/dropped/imputed/extrapolated/ood (``frac_ood`` None when
    the store has no training rows) and predicted per feature set
    (every one of ``set_names``, in that order, zeros too), overall and per species."""

    def counts(mask: np.ndarray) -> dict:
        f = flags[mask]
        k = kept[mask]
        n_pred = int(k.sum())
        n_extra = int((f["extrapolated"].to_numpy() & k).sum())
        n_ood = int((f["ood"].to_numpy() & k).sum())
        score = f.loc[k, "ood_score"].to_numpy(dtype=float)
        sets = f.loc[k, "feature_set"].value_counts()
        return {
            "cells_in": int(len(f)),
            "predicted": n_pred,
            "by_feature_set": {s: int(sets.get(s, 0)) for s in set_names},
            "dropped": int((~k).sum()),
            "dropped_by_reason": {
                str(r): int(n) for r, n in f.loc[~k, "reason"].value_counts().sort_index().items()
            },
            "imputed": int((f["imputed"].to_numpy() & k).sum()),
            "extrapolated": n_extra,
            "frac_extrapolated": round(n_extra / n_pred, 4) if n_pred else None,
            "ood": n_ood,
            "frac_ood": round(n_ood / n_pred, 4) if n_pred and not np.isnan(score).all() else None,
            "ood_score_median": (
                round(float(np.median(score)), 2) if n_pred and not np.isnan(score).any() else None
            ),
            "cells_missing_feature": dict(sorted(_count_names(f["missing_features"]).items())),
        }

    out = counts(np.ones(len(flags), dtype=bool))
    species = meta_all["species"].to_numpy()
    out["per_species"] = {str(s): counts(species == s) for s in sorted(set(species))}
    return out


def extrapolation_by_feature(
    flags: pd.DataFrame, kept: np.ndarray, features: list[str]
) -> dict[str, int]:
    """Number of predicted cells outside the tolerated training range, per feature."""
    return {**dict.fromkeys(features, 0), **_count_names(flags.loc[kept, "extrapolated_features"])}


__all__ = [
    "FLAG_COLUMNS",
    "CellScreen",
    "ScreenResult",
    "predictable_columns",
    "rank_feature_sets",
    "extrapolation_by_feature",
    "screen_summary",
]
