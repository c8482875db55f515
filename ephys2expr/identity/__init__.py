"""Cell identity from electrophysiology: P(family | ephys), P(type | ephys) and expression
through them.

* :mod:`~ephys2expr.identity.classifier` - ``IdentityClassifier``: multinomial logistic
  regression, k nearest neighbours or the class frequencies, whichever an inner grouped CV
  prefers (log-loss), with probabilities over the full class list (0 for a class the fit
  never saw).
* :mod:`~ephys2expr.identity.scores` - accuracy, balanced accuracy, log-loss, expected
  calibration error, confusion matrix, reliability bins.
* :mod:`~ephys2expr.identity.mixture` - expression as a probability-weighted sum of class
  means, and the blend of the family and type mixtures (the one place of each formula).
* :mod:`~ephys2expr.identity.align` - batch alignment of another lab's cells onto the
  training cells' class-conditional Gaussians (docs/transfer.md); the Gaussians and the EM
  in :mod:`~ephys2expr.identity.gaussians`, the fitted result (shift, composition, the
  sub-batches of cells that measured fewer features) in
  :mod:`~ephys2expr.identity.alignment`.
* :mod:`~ephys2expr.identity.temper` - the temperature of an aligned batch's identity
  probabilities from its fitted shift (honest confidence under a lab shift).
* :mod:`~ephys2expr.identity.plots` - confusion-matrix and reliability-diagram figures.

A floor below :mod:`ephys2expr.model`, whose stored classifiers predict with these formulas
(the softmax in ``classifier``, the blend in ``mixture``); used by :mod:`ephys2expr.train`
(nested CV, mixture and ``best`` models) and :mod:`ephys2expr.predict` (alignment).
"""
