"""Train the per-gene models and evaluate them honestly (the ``train`` stage's science).

Three rooms, by concern, and the stage's own modules beside them:

* :mod:`~ephys2expr.train.cv` - the honest evaluation: outer folds, nested CV, baselines,
  permutation null.
* :mod:`~ephys2expr.train.identity` - ``train.model: mixture | best``: the identity
  classifiers' nested CV, expression through identity, the per-gene choice of kind.
* :mod:`~ephys2expr.train.uncertainty` - what the OOD flag costs in CV and the prediction
  intervals calibrated on out-of-fold residuals.
* :mod:`~ephys2expr.train.settings` - ``TrainSettings`` (the ``train:`` params).
* :mod:`~ephys2expr.train.inputs` - read and check prepare's tables; ``ParquetTargets``.
* :mod:`~ephys2expr.train.gene_chunk` - one chunk of genes: nested CV, baselines, refit, null.
* :mod:`~ephys2expr.train.evaluate` - ``train_and_evaluate``: one feature set's chunks on an
  executor, gathered (q-values, metrics, report).
* :mod:`~ephys2expr.train.one_set` - one feature set trained as the stage trains each set.
* :mod:`~ephys2expr.train.on_demand` - a feature set the store lacks, fitted for a table.
* :mod:`~ephys2expr.train.run` - ``train_from_prepared``: the stage's whole job, one model
  per feature set joined into one store.
* :mod:`~ephys2expr.train.feature_sets` - what each feature set achieves (table, headline).
* :mod:`~ephys2expr.train.summary` - the report and the headline metrics.
* :mod:`~ephys2expr.train.plots` - the train figures.

The estimator and the model store live in :mod:`ephys2expr.model`.
"""
