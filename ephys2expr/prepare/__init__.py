"""The prepare step: raw files -> tidy, typed training and prediction tables.

- :mod:`~ephys2expr.prepare.settings`: :class:`PrepareSettings` (``params.yaml prepare``).
- :mod:`~ephys2expr.prepare.run`: :func:`prepare`, the whole step (reads and checks every
  input, returns the tables and the metrics/report; writes nothing).
- :mod:`~ephys2expr.prepare.symbols`: undo R's ``make.names`` on gene symbols.
- :mod:`~ephys2expr.prepare.genes`: the gene filters (variance, expression, top-N).
- :mod:`~ephys2expr.prepare.derive`: the 15 features from Allen per-cell columns.

Nothing is imported here: the readers import :mod:`symbols` and :mod:`derive`, and
:mod:`run` imports the readers, so importing :mod:`run` from here would be circular.
"""
