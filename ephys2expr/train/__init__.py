"""Train the per-gene models and evaluate them honestly (the ``train`` stage's science).

* :mod:`~ephys2expr.train.settings` - ``TrainSettings`` (the ``train:`` params).
* :mod:`~ephys2expr.train.inputs` - read and check prepare's tables; ``ParquetTargets``.
* :mod:`~ephys2expr.train.folds` - outer CV folds and pooled per-gene scores.
* :mod:`~ephys2expr.train.cv` - nested cross-validation (alpha chosen inside each fold).
* :mod:`~ephys2expr.train.baselines` - mean, OLS and Exc/Inh class baselines, same folds.
* :mod:`~ephys2expr.train.null` - permutation null, p-values and BH q-values.
* :mod:`~ephys2expr.train.chunks` - one chunk of genes: nested CV, baselines, refit, null.
* :mod:`~ephys2expr.train.evaluate` - ``train_and_evaluate``: one feature set's chunks on an
  executor, gathered (q-values, metrics, report).
* :mod:`~ephys2expr.train.run` - ``train_from_prepared``: the stage's whole job, one model
  per feature set joined into one store.
* :mod:`~ephys2expr.train.feature_sets` - what each feature set achieves (table, headline).
* :mod:`~ephys2expr.train.summary` - the report and the headline metrics.
* :mod:`~ephys2expr.train.plots` - the train figures.

The estimator and the model store live in :mod:`ephys2expr.model`.
"""
