"""Readers of the raw inputs, one module per kind of file.

- :mod:`~ephys2expr.readers.r`: :func:`read_r`, THE reader of R data files (RDS and RData).
- :mod:`~ephys2expr.readers.training`: the cell-type training tables (the lab's RDS,
  Online Table 3) and the Entrez symbol table.
- :mod:`~ephys2expr.readers.allen`: the Allen Cell Types per-cell tables (v6, v10).
- :mod:`~ephys2expr.readers.columns`: typed columns with errors naming file and column.

Every reader raises :class:`~ephys2expr.errors.InputError` with the file name and the
offending column or value, never a traceback from deep inside a parser.
"""

from ephys2expr.readers.r import read_r

__all__ = ["read_r"]
