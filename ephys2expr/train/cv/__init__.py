"""The honest evaluation of the per-gene models: everything measured on held-out rows.

* :mod:`~ephys2expr.train.cv.folds` - outer CV folds (animals whole) and pooled per-gene scores.
* :mod:`~ephys2expr.train.cv.nested` - nested cross-validation (alpha chosen inside each fold).
* :mod:`~ephys2expr.train.cv.baselines` - mean, OLS and Exc/Inh class baselines, same folds.
* :mod:`~ephys2expr.train.cv.null` - permutation null, p-values and BH q-values (its numba
  kernel in ``_null_kernel``).
"""
