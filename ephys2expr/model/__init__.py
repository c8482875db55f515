"""The per-gene linear models: numba kernels, the estimator, and the model store.

* :mod:`~ephys2expr.model.kernels` - the numba kernels (coordinate descent over all genes).
* :mod:`~ephys2expr.model.path` - the exact alpha path for all genes, alpha grid, inner folds.
* :mod:`~ephys2expr.model.estimator` - ``MultiGeneElasticNet``.
* :mod:`~ephys2expr.model.store` - the model store, a package with one public face
  (``ModelStore`` and its ``FeatureSet`` s, ``save_model_store``, ``load_model_store``, the
  builders and ``linear_predict``, the one prediction formula) and private modules (a
  feature set, the store in memory, build, save/load, on-disk format, checks, identity).
* :mod:`~ephys2expr.model.ood` - how far a cell is from the training rows (kNN distance
  percentile, per-feature shift, distance beyond the range; ``bound_features`` moves a far
  cell into it).
* :mod:`~ephys2expr.model.intervals` - prediction intervals (``GeneIntervals``, conformal
  quantiles, difficulty models, the bounds of a predicted chunk).
* :mod:`~ephys2expr.model.bounds_kernel` - the numba kernel of those bounds.
"""
