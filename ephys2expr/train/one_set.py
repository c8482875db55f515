"""One feature set trained as the train stage trains each of its sets.

The stage's loop (:func:`~ephys2expr.train.run.train_from_prepared`) and a set fitted on
demand at predict time (:func:`~ephys2expr.train.on_demand.fit_feature_set`) both call
:func:`fit_set`, so a set made either way comes from the same procedure: the nested CV,
baselines and null (:func:`~ephys2expr.train.evaluate.train_and_evaluate`), then under
``train.model: mixture | best`` the identity classifiers and the per-gene choice of model
kind (:func:`~ephys2expr.train.identity.best.apply_identity`, which also recalibrates the
intervals on the chosen model's out-of-fold predictions), and the set's single-set model store.
"""

from __future__ import annotations

import pandas as pd

from ephys2expr.model.store import ModelStore, store_from_estimator
from ephys2expr.train.evaluate import TrainResult, train_and_evaluate
from ephys2expr.train.identity.best import IdentityFit, apply_identity, identity_settings
from ephys2expr.train.settings import TrainSettings


def fit_set(
    features: pd.DataFrame,
    targets,
    types: pd.DataFrame,
    settings: TrainSettings,
    name: str,
    provenance: dict,
    executor=None,
    gene_chunk: int = 0,
    keep_oof: bool = True,
) -> tuple[TrainResult, ModelStore, IdentityFit | None]:
    """Train the feature set ``name`` (the columns of ``features``).

    ``settings`` are resolved (:func:`~ephys2expr.train.evaluate.resolved_settings`);
    ``keep_oof``: keep the out-of-fold predictions in the result (always kept under
    ``model: mixture | best``, which chooses from them).

    Returns
    -------
    (TrainResult, ModelStore, IdentityFit or None)
        The evaluation, the set's model (with its intervals) and, under ``model: mixture |
        best``, its identity fit (:func:`~ephys2expr.train.identity.best.store_identity` puts the
        classifiers into a store).
    """
    identity = settings.model != "lasso"
    result = train_and_evaluate(
        features,
        targets,
        types,
        identity_settings(settings),
        executor=executor,
        gene_chunk=gene_chunk,
        keep_oof=keep_oof or identity,
    )
    fit = None
    if identity:
        result, fit = apply_identity(result, features, targets, types, settings)
    model = store_from_estimator(
        result.final,
        features,
        targets.index,
        result.per_gene,
        provenance,
        feature_set=name,
        intervals=result.intervals,
    )
    return result, model, fit


__all__ = ["fit_set"]
