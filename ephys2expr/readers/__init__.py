"""Readers of the raw inputs, one module per kind of file.

- :mod:`~ephys2expr.readers.r`: :func:`read_r`, THE reader of R data files (RDS and RData).
- :mod:`~ephys2expr.readers.training`: the cell-type training tables (the lab's RDS,
  Online Table 3) and the Entrez symbol table.
- :mod:`~ephys2expr.readers.allen`: the Allen Cell Types per-cell tables (v6, v10).
- :mod:`~ephys2expr.readers.columns`: typed columns with errors naming file and column.
- :mod:`~ephys2expr.readers.derive`: the 15 features from Allen per-cell columns.
- :mod:`~ephys2expr.readers.symbols`: undo R's ``make.names`` on gene symbols.
- :mod:`~ephys2expr.readers.paired_layout`: the generic paired (Patch-seq) layout;
  :mod:`~ephys2expr.readers.scala`: Scala et al. 2021 in that shape.
- :mod:`~ephys2expr.readers.tasic`, :mod:`~ephys2expr.readers.cadwell`,
  :mod:`~ephys2expr.readers.counts`, :mod:`~ephys2expr.readers.palette`: validation data.

Every reader raises :class:`~ephys2expr.errors.InputError` with the file name and the
offending column or value, never a traceback from deep inside a parser.
"""

from ephys2expr.readers.r import read_r

__all__ = ["read_r"]
