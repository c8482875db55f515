"""What predict reads: a per-cell table, checked and screened before any prediction.

* :mod:`~ephys2expr.predict.inputs.cells` - ``load_cells``: read a per-cell table (CSV, TSV,
  Parquet or an ipfx table), check its features (dtype, finite, physically plausible).
* :mod:`~ephys2expr.predict.inputs.metadata` - the metadata carried to the output and the
  cells' species.
* :mod:`~ephys2expr.predict.inputs.mistakes` - likely mistakes (units, misspelt columns),
  one warning line each that names the fix.
* :mod:`~ephys2expr.predict.inputs.screen` - ``CellScreen``: each cell's feature set,
  missing features (drop / impute), extrapolation flags and the OOD score.
"""
