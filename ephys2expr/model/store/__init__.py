"""The model store: every gene's linear model per feature set, its intervals and identity
classifiers, saved as one checked, pickle-free folder.

The public face is this module: :class:`ModelStore` (the store in memory: its
:class:`FeatureSet` s and what they share),
:func:`save_model_store` / :func:`load_model_store` (the folder), the builders
(:func:`store_from_estimator`, :func:`join_feature_sets`, :func:`add_feature_set`,
:func:`with_identity`) and the formulas a store predicts with (:func:`linear_predict`,
:func:`clip_expression`, :func:`nest_types`, :func:`apply_mixture`). Other packages import
only from here; the private modules are the store's own rooms:

* ``_feature_set`` - :class:`FeatureSet`: one set's models and their ``predict``;
  ``linear_predict``, the one prediction formula (the estimator's ``predict`` calls it),
  ``EXPRESSION_RANGE``.
* ``_memory`` - :class:`ModelStore`: the sets, primary first, and what they share
  (training rows and targets, provenance, identity part).
* ``_build`` - building a store from an estimator and joining feature sets.
* ``_io`` - saving and loading a store folder as a unit.
* ``_format`` - the on-disk format (written as a unit, md5-verified; ``SCHEMA_VERSION``).
* ``_checks`` - the checks of ``model.json``.
* ``_identity`` - the stored identity classifiers and class means, the mixture formula, a
  type nested in its family.
"""

from ephys2expr.model.store._build import (
    add_feature_set,
    join_feature_sets,
    store_from_estimator,
    with_identity,
)
from ephys2expr.model.store._feature_set import (
    EXPRESSION_RANGE,
    FeatureSet,
    centred_terms,
    clip_expression,
    linear_predict,
)
from ephys2expr.model.store._format import SCHEMA_VERSION
from ephys2expr.model.store._identity import (
    LevelClassifier,
    StoreIdentity,
    apply_mixture,
    identity_from_tables,
    identity_tables,
    nest_types,
)
from ephys2expr.model.store._io import check_store_destination, load_model_store, save_model_store
from ephys2expr.model.store._memory import ORACLE_BASELINES, ModelStore, describe_sets

__all__ = [
    "EXPRESSION_RANGE",
    "FeatureSet",
    "ORACLE_BASELINES",
    "SCHEMA_VERSION",
    "LevelClassifier",
    "ModelStore",
    "StoreIdentity",
    "add_feature_set",
    "apply_mixture",
    "centred_terms",
    "check_store_destination",
    "clip_expression",
    "describe_sets",
    "identity_from_tables",
    "identity_tables",
    "join_feature_sets",
    "linear_predict",
    "load_model_store",
    "nest_types",
    "save_model_store",
    "store_from_estimator",
    "with_identity",
]
