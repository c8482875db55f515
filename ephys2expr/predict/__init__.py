"""Apply a model store to new cells.

* :mod:`~ephys2expr.predict.settings` - ``PredictSettings`` (the ``predict:`` params).
* :mod:`~ephys2expr.predict.cells` - read a per-cell table, check its features (dtype,
  finite, physically plausible), metadata.
* :mod:`~ephys2expr.predict.screen` - missing features (drop / impute) and extrapolation flags.
* :mod:`~ephys2expr.predict.write` - predict chunk by chunk (every block checked finite),
  write ``.h5ad`` (:mod:`~ephys2expr.predict.h5ad`, tiled for gene and cell reads) and/or
  the wide Parquet (:mod:`~ephys2expr.predict.parquet`).
* :mod:`~ephys2expr.predict.outputs` - ``OutputSet``: all outputs checked before the first
  write, committed together, temporary files of killed runs removed.
* :mod:`~ephys2expr.predict.read` - ``read_predictions``: a few genes or cells back, with
  constant genes filled in from the model store.
* :mod:`~ephys2expr.predict.plots` - marker and extrapolation sanity plots.
* :mod:`~ephys2expr.predict.run` - ``predict_tables``: the stage's whole job.
"""
