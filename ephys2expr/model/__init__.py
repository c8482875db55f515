"""The per-gene linear models: numba kernels, the estimator, and the model store.

* :mod:`~ephys2expr.model._kernels` - the numba kernels (coordinate descent over all genes).
* :mod:`~ephys2expr.model.path` - the exact alpha path for all genes, alpha grid, inner folds.
* :mod:`~ephys2expr.model.estimator` - ``MultiGeneElasticNet``.
* :mod:`~ephys2expr.model.store` - the model store in memory (``ModelStore``) and
  ``linear_predict``, the one prediction formula (the estimator's ``predict`` calls it).
* :mod:`~ephys2expr.model.store_build` - building a store (``store_from_estimator``,
  ``join_feature_sets``, ``add_feature_set``).
* :mod:`~ephys2expr.model.store_io` - ``save_model_store``, ``load_model_store``,
  ``check_store_destination``.
* :mod:`~ephys2expr.model.store_format` - the on-disk format (written as a unit, verified).
* :mod:`~ephys2expr.model.store_checks` - the checks of ``model.json``.
* :mod:`~ephys2expr.model.store_identity` - the stored identity classifiers and class means,
  the mixture formula, a type nested in its family.
* :mod:`~ephys2expr.model.ood` - how far a cell is from the training rows (kNN distance
  percentile, per-feature shift, distance beyond the range; ``bound_features`` moves a far
  cell into it).
* :mod:`~ephys2expr.model.intervals` - prediction intervals (``GeneIntervals``, conformal
  quantiles, difficulty models).
"""
