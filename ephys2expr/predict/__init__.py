"""Apply a model store to new cells.

* :mod:`~ephys2expr.predict.settings` - ``PredictSettings`` (the ``predict:`` params).
* :mod:`~ephys2expr.predict.cells` - read a per-cell table, check its features, metadata.
* :mod:`~ephys2expr.predict.screen` - missing features (drop / impute) and extrapolation flags.
* :mod:`~ephys2expr.predict.write` - predict chunk by chunk, write Parquet and ``.h5ad``.
* :mod:`~ephys2expr.predict.plots` - marker and extrapolation sanity plots.
* :mod:`~ephys2expr.predict.run` - ``predict_tables``: the stage's whole job.
"""
