"""What predict writes, and reading it back.

* :mod:`~ephys2expr.predict.outputs.write` - predict chunk by chunk (every block checked
  finite) and write the blocks to the files below.
* :mod:`~ephys2expr.predict.outputs.h5ad` - the ``.h5ad`` writer, tiled for gene and cell reads.
* :mod:`~ephys2expr.predict.outputs.parquet` - the wide Parquet writer.
* :mod:`~ephys2expr.predict.outputs.output_set` - ``OutputSet``: all outputs checked before
  the first write, committed together, temporary files of killed runs removed.
* :mod:`~ephys2expr.predict.outputs.read` - ``read_predictions``: a few genes or cells back,
  with constant genes filled in from the model store; ``describe_cell``.
"""
