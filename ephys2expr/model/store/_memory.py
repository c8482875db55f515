"""The model store: every gene's linear model per feature set, in a safe, versioned,
pickle-free format.

Layout of a store directory::

    model.json      schema version, feature names/order, scaler statistics, training
                    feature range and means, penalty, params and input hashes
    genes.parquet   one row per gene: intercept, alpha, n_nonzero, and any per-gene
                    evaluation columns (cv_r2, cv_rmse, ...)
    coef.parquet    genes x features coefficients in ORIGINAL feature units

Predicted log2 expression for a cell with features ``x`` (original units) is
``coef @ x + intercept``.

**Feature sets** (schema 3). A store holds one model per feature set, all for the same
genes and training rows: the *primary* set uses every feature of the store, each other
set leaves some out (a cell lacking ``tau`` is predicted by a set without it). Both tables
are then indexed by ``(feature_set, gene)``; a set's coefficients of the features it leaves
out are stored as exact zeros. In memory each set is a
:class:`~ephys2expr.model.store._feature_set.FeatureSet` and the :class:`ModelStore` holds
them (:attr:`ModelStore.sets`, primary first) with what they share.

The folder is written and read as one unit and checked on load (``model.json`` holds the
md5 of both tables): :mod:`ephys2expr.model.store._io` (save, load), on-disk format in
:mod:`ephys2expr.model.store._format`. A store is built from a fitted estimator by
:mod:`ephys2expr.model.store._build`; every prediction goes through
:func:`~ephys2expr.model.store._feature_set.linear_predict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.model.store._feature_set import FeatureSet, check_finite
from ephys2expr.model.store._identity import StoreIdentity


@dataclass
class ModelStore:
    """The feature sets of one training, and what they share.

    Attributes
    ----------
    sets : dict of str to FeatureSet
        Every feature set by name, the primary (every feature of the store) first; the
        others use fewer of its features, for the same genes.
    provenance : dict
        Params and input hashes the store came from.
    train_features : pandas.DataFrame or None
        The training rows x ``features``, original units (schema 5,
        ``train_features.parquet``): what the out-of-distribution score measures distances
        to (:mod:`ephys2expr.model.ood`); None in stores of schema 4 and older.
    identity : StoreIdentity or None
        Per-cell stores trained with ``train.model: mixture | best`` (schema 6): each
        feature set's family and type classifiers and the class means
        (:mod:`ephys2expr.model.store._identity`); given to every set.
    train_targets : pandas.DataFrame or None
        Genes x training rows (columns in ``train_features`` row order), the values the
        models were fitted to (schema 6, ``train_targets.parquet``), and
    train_types : pandas.DataFrame or None
        the training rows' metadata the CV needs (``broad_type``, ``weight``; ``group`` and
        ``family`` for per-cell sources; ``train_types.parquet``): with them a feature set
        the store lacks is fitted on demand with the store's own settings
        (:mod:`ephys2expr.train.on_demand`). None in stores of schema 5 and older.
    """

    sets: dict[str, FeatureSet]
    provenance: dict = field(default_factory=dict)
    train_features: pd.DataFrame | None = None
    identity: StoreIdentity | None = None
    train_targets: pd.DataFrame | None = None
    train_types: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if not self.sets or not all(isinstance(s, FeatureSet) for s in self.sets.values()):
            raise InputError("model store: needs at least one feature set")
        # the identity part is the store's (saved once); each set reads its own classifier
        self.sets = {
            name: s
            if s.identity is self.identity
            else dataclasses.replace(s, identity=self.identity)
            for name, s in self.sets.items()
        }
        self.validate()

    @property
    def primary(self) -> FeatureSet:
        """The set of every feature of the store (the first)."""
        return next(iter(self.sets.values()))

    @property
    def feature_sets(self) -> dict[str, FeatureSet]:
        """Every feature set by name, the primary first (:attr:`sets`)."""
        return self.sets

    @property
    def feature_set(self) -> str:
        """The primary set's name."""
        return self.primary.name

    @property
    def features(self) -> list[str]:
        """Every feature of the store (the primary set's, in the tables' column order)."""
        return self.primary.features

    @property
    def gene_names(self) -> list[str]:
        """The store's genes (every set's)."""
        return self.primary.gene_names

    def model(self, name: str) -> FeatureSet:
        """The feature set ``name`` (an error lists the sets the store offers)."""
        if name not in self.sets:
            raise InputError(
                f"model store: no feature set {name!r} (the store offers {describe_sets(self)})"
            )
        return self.sets[name]

    def validate(self, where: str = "model store") -> None:
        """Raise :class:`InputError` if a set, the sets together or the shared tables are
        inconsistent (each set checks itself: :meth:`FeatureSet.validate`)."""
        for s in self.sets.values():
            s.validate(where)
        self._validate_sets(where)
        self._validate_train_features(where)
        self._validate_train_targets(where)

    def _validate_sets(self, where: str) -> None:
        """The other sets: fewer features of the primary's, in its order; same genes."""
        primary = self.primary
        for name, sub in list(self.sets.items())[1:]:
            at = f"{where}: feature set {name!r}"
            if name == primary.name or sub.name != name:
                raise InputError(f"{at} is named {sub.name!r} or repeats the primary name")
            if [f for f in primary.features if f in sub.features] != sub.features or len(
                sub.features
            ) >= len(primary.features):
                raise InputError(
                    f"{at}: features {sub.features} are not a subset of {primary.features} "
                    "in that order"
                )
            if not sub.coef.index.equals(primary.coef.index):
                raise InputError(f"{at} names other genes than the primary set")
            if (sub.penalty, sub.l1_ratio) != (primary.penalty, primary.l1_ratio):
                raise InputError(f"{at} has another penalty than the primary set")
        if self.primary.name != next(iter(self.sets)):
            raise InputError(f"{where}: the primary set is named {self.primary.name!r}")

    def _validate_train_features(self, where: str) -> None:
        """The training rows, if held: the store's features as columns, finite numbers."""
        rows = self.train_features
        if rows is None:
            return
        if list(rows.columns) != self.features:
            raise InputError(
                f"{where}: train_features columns {list(rows.columns)} are not the features "
                f"{self.features}"
            )
        for col in self.features:
            values = rows[col]
            if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
                raise InputError(f"{where}: train_features column '{col}' is not numbers")
            check_finite(
                values.to_numpy(dtype=float), f"train_features column '{col}'", rows.index, where
            )

    def _validate_train_targets(self, where: str) -> None:
        """The training targets and row metadata, if held: the store's genes x its training
        rows (finite numbers), and one metadata row per training row."""
        if self.train_targets is None and self.train_types is None:
            return
        rows = self.train_features
        if self.train_targets is None or self.train_types is None or rows is None:
            raise InputError(f"{where}: train_targets, train_types and train_features go together")
        y, types = self.train_targets, self.train_types
        if not y.index.equals(self.primary.coef.index) or list(y.columns) != list(rows.index):
            raise InputError(f"{where}: train_targets are not the store's genes x training rows")
        if list(types.index) != list(rows.index) or "broad_type" not in types.columns:
            raise InputError(f"{where}: train_types are not the training rows with broad_type")
        if not np.isfinite(y.to_numpy(dtype=float)).all():
            raise InputError(f"{where}: train_targets hold a value that is not a finite number")


# Baselines whose ``beats_<name>`` column of a genes table compares with an oracle: the
# ``class`` baseline predicts each held-out row from its TRUE Exc/Inh class, which no user
# has, so beating it is no condition for trusting a gene (ephys2expr.predict.quality; the
# training's baselines: ephys2expr.train.cv.baselines).
ORACLE_BASELINES: tuple[str, ...] = ("class",)


def describe_sets(store: ModelStore) -> str:
    """``name (features), ...`` of every feature set of ``store`` (for error messages)."""
    return "; ".join(f"{n} ({', '.join(m.features)})" for n, m in store.sets.items())


__all__ = ["ModelStore", "ORACLE_BASELINES", "describe_sets"]
