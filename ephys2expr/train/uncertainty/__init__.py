"""How sure a prediction is, measured in training's cross-validation.

* :mod:`~ephys2expr.train.uncertainty.ood` - what the out-of-distribution flag costs in CV
  (each held-out row scored against its fold's training rows).
* :mod:`~ephys2expr.train.uncertainty.intervals` - prediction intervals calibrated on
  out-of-fold residuals, their coverage per method and family.

The formulas (kNN distance, conformal quantiles) live in :mod:`ephys2expr.model`.
"""
