"""Build a :class:`~ephys2expr.model.store._memory.ModelStore` from a fitted estimator (a
store of one :class:`~ephys2expr.model.store._feature_set.FeatureSet`), and join the feature
sets into one store (the one way a store is built)."""

from __future__ import annotations

import dataclasses

import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.model.store._feature_set import FeatureSet
from ephys2expr.model.store._memory import ModelStore


def store_from_estimator(
    estimator,
    features: pd.DataFrame,
    genes: pd.Index,
    per_gene: pd.DataFrame | None = None,
    provenance: dict | None = None,
    feature_set: str = "full",
    intervals=None,
) -> ModelStore:
    """The model store of a fitted :class:`~ephys2expr.model.estimator.MultiGeneElasticNet`.

    Parameters
    ----------
    estimator : MultiGeneElasticNet
        Fitted on ``features`` (rows = training cell types or cells).
    features : DataFrame
        The training design matrix, rows x features, original units (its columns name the
        features, its index the training rows).
    genes : Index
        Gene names, in the estimator's target order.
    per_gene : DataFrame, optional
        Per-gene evaluation columns (cv_r2, baselines, ...) indexed by gene; stored after
        ``intercept``.
    provenance : dict, optional
        Params and input hashes; the training rows, feature means and the alpha path are
        added here.
    feature_set : str
        Name of the feature set (the columns of ``features``); stores of several sets are
        joined by :func:`join_feature_sets`.
    intervals : GeneIntervals, optional
        The set's prediction intervals (:mod:`ephys2expr.train.uncertainty.intervals`).
    """
    from ephys2expr import __version__

    X = features.to_numpy(dtype=float)
    table = per_gene.copy() if per_gene is not None else pd.DataFrame(index=genes.copy())
    table.insert(0, "intercept", estimator.intercept_)
    if "alpha" not in table.columns:
        table["alpha"] = estimator.alpha_
    coef = pd.DataFrame(estimator.coef_, index=genes.copy(), columns=list(features.columns))
    auto = isinstance(estimator.alpha, str)
    info = dict(provenance or {})
    info.update(
        {
            "cell_types": list(features.index),
            "feature_mean": X.mean(axis=0).tolist(),
            "alpha_path": estimator.alphas_.tolist() if auto else None,
            "code": f"ephys2expr {__version__}",
        }
    )
    model = FeatureSet(
        name=feature_set,
        features=list(features.columns),
        coef=coef,
        genes=table,
        scaler_mean=estimator.mean_,
        scaler_scale=estimator.scale_,
        feature_min=X.min(axis=0),
        feature_max=X.max(axis=0),
        penalty=estimator.penalty,
        l1_ratio=estimator._l1_ratio(),
        intervals=intervals,
    )
    return ModelStore(
        sets={feature_set: model},
        provenance=info,
        # the training rows: what a new cell's out-of-distribution score is measured against
        train_features=features.astype(float).copy(),
    )


def join_feature_sets(models: list[ModelStore]) -> ModelStore:
    """One store of several stores' feature sets (same genes and rows), the first primary.

    The primary set must use every feature of the others (the full set); the first store's
    provenance, training rows (``train_features``: every set's rows are the same) and
    identity part are the joined store's.
    """
    primary = models[0]
    sets = {name: s for m in models for name, s in m.sets.items()}
    if len(sets) != sum(len(m.sets) for m in models):
        names = [name for m in models for name in m.sets]
        raise InputError(f"model store: feature set names repeat: {names}")
    return dataclasses.replace(primary, sets=sets)


def with_identity(store: ModelStore, identity) -> ModelStore:
    """``store`` holding the identity part ``identity`` (a
    :class:`~ephys2expr.model.store._identity.StoreIdentity`, one classifier per feature set
    of the store), which the store gives to every set."""
    missing = [n for n in store.sets if n not in identity.classifiers]
    if missing:
        raise InputError(f"model store: no identity classifier for feature set {missing[0]!r}")
    return dataclasses.replace(store, identity=identity)


def add_feature_set(store: ModelStore, model: ModelStore) -> ModelStore:
    """``store`` plus the one feature set of ``model`` (a store of one set over fewer of its
    features, e.g. fitted on demand): a new store, ``store`` is unchanged. A store with
    identity classifiers (``train.model: mixture | best``) takes the new set's classifier
    too: every set needs its own."""
    identity = store.identity
    new = model.primary
    if identity is not None:
        own = model.identity.classifiers.get(new.name) if model.identity else None
        if own is None:
            raise InputError(
                f"model store: feature set {new.name!r} has no identity classifier "
                "and the store's other sets have one"
            )
        classifiers = {**identity.classifiers, new.name: own}
        identity = dataclasses.replace(identity, classifiers=classifiers)
    return dataclasses.replace(store, sets={**store.sets, new.name: new}, identity=identity)


__all__ = ["add_feature_set", "join_feature_sets", "store_from_estimator", "with_identity"]
