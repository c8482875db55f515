"""Training with cell identity (``train.model: mixture | best``, per-cell sources).

* :mod:`~ephys2expr.train.identity.classifier_cv` - nested grouped CV of the identity
  classifier per level (family, type).
* :mod:`~ephys2expr.train.identity.mixture` - expression through identity and the per-gene
  choice of kind by inner CV.
* :mod:`~ephys2expr.train.identity.best` - ``apply_identity``: the classifiers, the mixture,
  the per-gene choice and the held-out null on top of one feature set's lasso run.

The formulas (softmax, blend) live in :mod:`ephys2expr.identity`.
"""
