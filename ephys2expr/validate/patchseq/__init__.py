"""Paired Patch-seq cells: predictions from a cell's own ephys against its measured expression.

* :mod:`~ephys2expr.validate.patchseq.cadwell` - the Cadwell 2016 cells predicted by the
  store's feature set of Cadwell's 7 features, per gene and per cell against measured and
  the training-mean profile; ``stored_feature_set`` (validation never fits a model).
* :mod:`~ephys2expr.validate.patchseq.cross_source` - the type-mean model vs the per-cell
  model on the same held-out cells (Scala out-of-fold, Cadwell) and their shared genes.
"""
