"""Cell identity from electrophysiology: P(family | ephys), P(type | ephys) and expression
through them.

* :mod:`~ephys2expr.identity.classifier` - ``IdentityClassifier``: multinomial logistic
  regression, k nearest neighbours or the class frequencies, whichever an inner grouped CV
  prefers (log-loss), with probabilities over the full class list (0 for a class the fit
  never saw).
* :mod:`~ephys2expr.identity.scores` - accuracy, balanced accuracy, log-loss, expected
  calibration error, confusion matrix, reliability bins.
* :mod:`~ephys2expr.identity.mixture` - expression as a probability-weighted sum of class
  means, and the per-gene choice between model kinds by inner-CV error.
* :mod:`~ephys2expr.identity.plots` - confusion-matrix and reliability-diagram figures.

Used by :mod:`ephys2expr.train` (nested CV, mixture and ``best`` models) the way the linear
model of :mod:`ephys2expr.model` is.
"""
