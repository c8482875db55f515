"""Screen cells against the model's training rows: missing features and extrapolation.

:class:`CellScreen` drops or imputes cells with missing model features and flags values
outside the training range; :func:`screen_summary` and :func:`extrapolation_by_feature`
count what it found (for the report and the log).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ephys2expr.model.store import ModelStore
from ephys2expr.predict.settings import MISSING_POLICIES

# Per-cell flags added by the screen, written beside the metadata.
FLAG_COLUMNS: list[str] = [
    "imputed",
    "imputed_features",
    "extrapolated",
    "n_extrapolated",
    "extrapolated_features",
    "max_range_excess",
]


@dataclass
class ScreenResult:
    """What :meth:`CellScreen.transform` found.

    Attributes
    ----------
    X : numpy.ndarray
        Kept cells x model features (imputed values filled in), original units.
    kept : numpy.ndarray of bool
        Per input cell: predicted (True) or dropped for missing features (False).
    flags : pandas.DataFrame
        Per input cell: ``n_missing``, ``missing_features``, then :data:`FLAG_COLUMNS`.
    """

    X: np.ndarray
    kept: np.ndarray
    flags: pd.DataFrame


class CellScreen:
    """Handle missing features and flag extrapolation, using the model's training rows.

    Parameters
    ----------
    missing : {"drop", "impute"}
        ``drop``: cells with any missing model feature are not predicted (the original
        project's behaviour). ``impute``: missing values are set to the training mean
        of that feature (the scaler mean of the final fit) and the cell is flagged.
    tolerance : float
        A value is *extrapolated* when it lies more than ``tolerance x (max - min)``
        outside the training range ``[min, max]`` of its feature. Imputed values never
        count as extrapolated.

    The stage takes both from :class:`~ephys2expr.predict.settings.PredictSettings`,
    which checks them.

    Attributes
    ----------
    features_ : list of str
    mean_, min_, max_, range_, lower_, upper_ : numpy.ndarray
        Imputation values, the training range and the tolerated bounds, per feature.
    """

    def __init__(self, missing: str = "drop", tolerance: float = 0.1) -> None:
        self.missing = missing
        self.tolerance = tolerance

    def fit(self, store: ModelStore) -> CellScreen:
        """Take feature names, means and ranges from ``store``; returns self."""
        if self.missing not in MISSING_POLICIES:
            raise ValueError(f"missing={self.missing!r}: expected one of {MISSING_POLICIES}")
        self.features_ = list(store.features)
        self.mean_ = store.scaler_mean.copy()
        self.min_, self.max_ = store.feature_min.copy(), store.feature_max.copy()
        self.range_ = self.max_ - self.min_
        self.lower_ = store.feature_min - self.tolerance * self.range_
        self.upper_ = store.feature_max + self.tolerance * self.range_
        return self

    def transform(self, features: pd.DataFrame) -> ScreenResult:
        """Screen cells (rows of ``features``, columns at least ``features_``)."""
        values = features[self.features_].to_numpy(dtype=float)
        names = np.asarray(self.features_, dtype=object)
        nan = np.isnan(values)
        n_missing = nan.sum(axis=1)
        kept = n_missing == 0 if self.missing == "drop" else np.ones(len(values), dtype=bool)
        filled = np.where(nan, self.mean_, values)

        below = (filled < self.lower_) & ~nan
        above = (filled > self.upper_) & ~nan
        outside = below | above
        # How far beyond the training range, in units of that range (0 inside it).
        with np.errstate(divide="ignore", invalid="ignore"):
            excess = np.maximum(self.min_ - filled, filled - self.max_)
            excess = np.where(outside, excess / np.where(self.range_ > 0, self.range_, 1.0), 0.0)
        flags = pd.DataFrame(
            {
                "n_missing": n_missing.astype(np.int64),
                "missing_features": [",".join(names[row]) for row in nan],
                "imputed": (n_missing > 0) & kept,
                "imputed_features": [
                    ",".join(names[row]) if k else "" for row, k in zip(nan, kept, strict=True)
                ],
                "extrapolated": outside.any(axis=1),
                "n_extrapolated": outside.sum(axis=1).astype(np.int64),
                "extrapolated_features": [",".join(names[row]) for row in outside],
                "max_range_excess": excess.max(axis=1, initial=0.0),
            },
            index=features.index,
        )
        return ScreenResult(X=filled[kept], kept=kept, flags=flags)


def _count_names(texts) -> dict[str, int]:
    """How often each name occurs in comma-joined name lists (the flag columns' format)."""
    counts: dict[str, int] = {}
    for text in texts:
        for name in filter(None, text.split(",")):
            counts[name] = counts.get(name, 0) + 1
    return counts


def screen_summary(meta_all: pd.DataFrame, flags: pd.DataFrame, kept: np.ndarray) -> dict:
    """Counts of cells in/predicted/dropped/imputed/extrapolated, overall and per species."""

    def counts(mask: np.ndarray) -> dict:
        f = flags[mask]
        k = kept[mask]
        n_pred = int(k.sum())
        n_extra = int((f["extrapolated"].to_numpy() & k).sum())
        return {
            "cells_in": int(len(f)),
            "predicted": n_pred,
            "dropped": int((~k).sum()),
            "imputed": int((f["imputed"].to_numpy() & k).sum()),
            "extrapolated": n_extra,
            "frac_extrapolated": round(n_extra / n_pred, 4) if n_pred else None,
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
    "extrapolation_by_feature",
    "screen_summary",
]
