"""ephys2expr: predict neuron gene expression from electrophysiology.

Shared logic for the DVC pipeline in ``stages/``: readers, feature derivation,
the vectorised per-gene penalised regression, evaluation, prediction and plots.
"""

__version__ = "0.1.0"
