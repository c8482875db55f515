"""The per-gene linear models: numba kernels, the estimator, and the model store."""
