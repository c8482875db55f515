"""Apply a model store to new cells.

Two rooms, by concern, and the stage's own modules beside them:

* :mod:`~ephys2expr.predict.inputs` - what comes in: read a per-cell table, check its
  features, carry its metadata, warn of likely mistakes, screen its cells (feature set,
  missing features, extrapolation, OOD).
* :mod:`~ephys2expr.predict.outputs` - what goes out: predict chunk by chunk and write
  ``.h5ad`` and/or Parquet as one committed set, and read predictions back.
* :mod:`~ephys2expr.predict.settings` - ``PredictSettings`` (the ``predict:`` params).
* :mod:`~ephys2expr.predict.jobs` - ``Job``: the tables a run reads and the files it writes.
* :mod:`~ephys2expr.predict.on_demand` - feature sets the inputs need and the store lacks,
  fitted before predicting.
* :mod:`~ephys2expr.predict.identity` - each cell's family and type (obs, obsm).
* :mod:`~ephys2expr.predict.align` - batch alignment and known classes in a prediction.
* :mod:`~ephys2expr.predict.intervals` - per-cell prediction intervals of a chunk of cells.
* :mod:`~ephys2expr.predict.quality` - every feature set's per-gene quality, each cell's
  trusted genes.
* :mod:`~ephys2expr.predict.summary` - the report and the headline metrics.
* :mod:`~ephys2expr.predict.plots` - marker and extrapolation sanity plots.
* :mod:`~ephys2expr.predict.run` - ``predict_tables``: the stage's whole job.
"""
