"""Build a :class:`~ephys2expr.model.store._memory.ModelStore` from a fitted estimator, and join
the feature sets' models into one store (the one way a store is built)."""

from __future__ import annotations

import dataclasses

import pandas as pd

from ephys2expr.errors import InputError
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
    return ModelStore(
        features=list(features.columns),
        coef=coef,
        genes=table,
        scaler_mean=estimator.mean_,
        scaler_scale=estimator.scale_,
        feature_min=X.min(axis=0),
        feature_max=X.max(axis=0),
        penalty=estimator.penalty,
        l1_ratio=estimator._l1_ratio(),
        provenance=info,
        feature_set=feature_set,
        # the training rows: what a new cell's out-of-distribution score is measured against
        train_features=features.astype(float).copy(),
        intervals=intervals,
    )


def join_feature_sets(models: list[ModelStore]) -> ModelStore:
    """One store of several feature sets' models (same genes and rows), the first primary.

    The primary model must use every feature of the others (the full set); its provenance
    and training rows (``train_features``: every set's rows are the same) are the store's.
    """
    primary = models[0]
    others = {m.feature_set: m for m in models[1:]}
    if len(others) != len(models) - 1 or primary.feature_set in others:
        names = [m.feature_set for m in models]
        raise InputError(f"model store: feature set names repeat: {names}")
    # the primary's provenance covers every set
    others = {
        n: dataclasses.replace(
            m,
            provenance={},
            train_features=None,
            train_targets=None,
            train_types=None,
            identity=primary.identity,
        )
        for n, m in others.items()
    }  # the identity part is the store's (saved once), each set reads its own classifier
    return dataclasses.replace(primary, other_sets=others)


def with_identity(store: ModelStore, identity) -> ModelStore:
    """``store`` (joined) holding the identity part ``identity`` (a
    :class:`~ephys2expr.model.store._identity.StoreIdentity`, one classifier per feature set
    of the store), shared by every set's model."""
    missing = [n for n in store.feature_sets if n not in identity.classifiers]
    if missing:
        raise InputError(f"model store: no identity classifier for feature set {missing[0]!r}")
    others = {n: dataclasses.replace(m, identity=identity) for n, m in store.other_sets.items()}
    return dataclasses.replace(store, identity=identity, other_sets=others)


def add_feature_set(store: ModelStore, model: ModelStore) -> ModelStore:
    """``store`` plus ``model`` (a single model over fewer of its features, e.g. fitted on
    demand) as one more feature set: a new store, ``store`` is unchanged. A store with
    identity classifiers (``train.model: mixture | best``) takes the new set's classifier
    too: every set needs its own."""
    identity = store.identity
    if identity is not None:
        own = model.identity.classifiers.get(model.feature_set) if model.identity else None
        if own is None:
            raise InputError(
                f"model store: feature set {model.feature_set!r} has no identity classifier "
                "and the store's other sets have one"
            )
        classifiers = {**identity.classifiers, model.feature_set: own}
        identity = dataclasses.replace(identity, classifiers=classifiers)
    model = dataclasses.replace(
        model,
        provenance={},
        train_features=None,
        train_targets=None,
        train_types=None,
        other_sets={},
    )
    out = dataclasses.replace(store, other_sets={**store.other_sets, model.feature_set: model})
    return with_identity(out, identity) if identity is not None else out


__all__ = ["add_feature_set", "join_feature_sets", "store_from_estimator", "with_identity"]
