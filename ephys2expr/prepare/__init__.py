"""The prepare step: raw files -> tidy, typed training and prediction tables.

- :mod:`~ephys2expr.prepare.settings`: :class:`PrepareSettings` (``params.yaml prepare``).
- :mod:`~ephys2expr.prepare.run`: :func:`prepare`, the whole step (reads and checks every
  input, returns the tables and the metrics/report; writes nothing).
- :mod:`~ephys2expr.prepare.genes`: the gene filters (variance, expression, top-N).
- :mod:`~ephys2expr.prepare.per_cell`: per-cell (Patch-seq) sources -> per-cell tables.

The readers (:mod:`ephys2expr.readers`, one floor down) restore gene symbols
(:mod:`~ephys2expr.readers.symbols`) and derive the Allen features
(:mod:`~ephys2expr.readers.derive`); nothing here is imported by them.
"""
