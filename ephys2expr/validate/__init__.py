"""Validation: predicted expression against measured expression (the ``validate`` stage).

- :mod:`~ephys2expr.validate.settings`: :class:`ValidateSettings` (``params.yaml validate``).
- :mod:`~ephys2expr.validate.agreement`: type agreement of group means, Exc/Inh label transfer.
- :mod:`~ephys2expr.validate.embedding`: joint predicted + measured spaces (z-scored and
  corrected), mixing, 2-D t-SNE/UMAP embeddings, subsampling.
- :mod:`~ephys2expr.validate.patchseq`: the Patch-seq (Cadwell 2016) refit on Cadwell's
  features and the per-gene / per-cell comparison with measured expression.
- :mod:`~ephys2expr.validate.plots`: every figure and its title.
- :mod:`~ephys2expr.validate.run`: :func:`validate_predictions`, the one call the stage makes
  (returns tables, headline metrics, the detailed report and figures), in named steps.
- :mod:`~ephys2expr.validate.result`: :class:`ValidationResult` and its assembly from the
  steps (the report, tables and figures; the headline metrics).
- :mod:`~ephys2expr.validate.crosssource`, :mod:`~ephys2expr.validate.identity`,
  :mod:`~ephys2expr.validate.transfer`: the two models on the same held-out cells, the
  per-cell store's families of the Allen cells, and transfer to other labs.

The measured references are read by :mod:`ephys2expr.readers.tasic`,
:mod:`ephys2expr.readers.cadwell` and :mod:`ephys2expr.readers.counts`.
"""
