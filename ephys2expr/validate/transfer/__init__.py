"""Transfer to other labs (validation only: no foreign cell reaches a training table or a store).

* :mod:`~ephys2expr.validate.transfer.sets` - ``transfer_sets``: every labelled foreign set
  (Allen v6/v10 and their aspiny cells, Cadwell, human L1, Berg L2/3) with each cell's
  truth, expected families and known class.
* :mod:`~ephys2expr.validate.transfer.scores` - the per-cell store's identity on each set by
  each alignment method, with and without the known class; Cadwell interval coverage; the
  summary and the figure.
"""
