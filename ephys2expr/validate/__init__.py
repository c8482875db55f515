"""Validation: predicted expression against measured expression (the ``validate`` stage).

Two rooms, by concern, and the stage's own modules beside them:

* :mod:`~ephys2expr.validate.patchseq` - paired Patch-seq cells: the Cadwell 2016 refit and
  the two models (type means, per cell) on the same held-out cells.
* :mod:`~ephys2expr.validate.transfer` - transfer to other labs: the foreign sets and the
  per-cell store's identity on them, with and without batch alignment.
* :mod:`~ephys2expr.validate.settings` - :class:`ValidateSettings` (``params.yaml validate``).
* :mod:`~ephys2expr.validate.agreement` - type agreement of group means, Exc/Inh label transfer.
* :mod:`~ephys2expr.validate.embedding` - joint predicted + measured spaces (z-scored and
  corrected), mixing, 2-D t-SNE/UMAP embeddings, subsampling.
* :mod:`~ephys2expr.validate.identity` - the per-cell store's families of the Allen cells.
* :mod:`~ephys2expr.validate.plots` - every figure and its title.
* :mod:`~ephys2expr.validate.run` - :func:`validate_predictions`, the one call the stage makes
  (returns tables, headline metrics, the detailed report and figures), in named steps.
* :mod:`~ephys2expr.validate.result` - :class:`ValidationResult` and its assembly from the
  steps (the report, tables and figures; the headline metrics).

The measured references are read by :mod:`ephys2expr.readers.tasic`,
:mod:`ephys2expr.readers.cadwell` and :mod:`ephys2expr.readers.counts`.
"""
