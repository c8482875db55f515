"""The ``predict:`` section of ``params.yaml``: every prediction setting, defined once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ephys2expr.errors import InputError
from ephys2expr.identity.align import METHODS as ALIGN_METHODS
from ephys2expr.model.intervals import LEVEL, LEVELS
from ephys2expr.model.ood import NEIGHBORS, PERCENTILE
from ephys2expr.settings import Settings, setting

MISSING_POLICIES = ("feature_set", "drop", "impute")
GENE_SETS = ("varying", "all", "predictable")
IMPLAUSIBLE_POLICIES = ("error", "drop_value")


@dataclass
class PredictSettings(Settings):
    """How the predict stage applies the model store to per-cell feature tables.

    Build it with ``PredictSettings.from_params("params.yaml", overrides)`` (or
    :func:`ephys2expr.settings.build_settings` together with the executor section). Which
    tables the pipeline predicts and the fewest features a cell needs are the ``cells:``
    section's (:class:`~ephys2expr.cell_inputs.CellSettings`), which train reads too.
    """

    SECTION: ClassVar[str] = "predict"
    MOVED: ClassVar[dict[str, str]] = {
        "inputs": "cells.inputs",
        "min_features": "cells.min_features",
        "n_permutations": "predict.on_demand_null",
    }

    missing: str = setting(
        "feature_set",
        "feature_set (each cell by the feature set of exactly the store's features it has; a "
        "set the store lacks is fitted on demand for --input tables) | drop (full set only: "
        "cells missing one of its features are not predicted) | impute (full set, training "
        "means filled in)",
    )
    on_demand_null: int | str = setting(
        "train",
        "permutation null of a feature set fitted on demand: 'train' = as the store was "
        "trained (train.n_permutations), or a number (0 = off: no q-values, nothing trusted)",
    )
    cache_dir: str = setting(
        "",
        "where feature sets fitted on demand are cached ('' = $XDG_CACHE_HOME/ephys2expr, "
        "default ~/.cache/ephys2expr); outside the DVC outputs",
    )
    extrapolation_tolerance: float = setting(
        0.1, "fraction of the training range a feature may lie beyond min/max unflagged"
    )
    ood_neighbors: int = setting(
        NEIGHBORS,
        "k of the out-of-distribution score: mean distance to the k nearest training rows "
        "(standardised; at most the root of the training rows' count: 4 for 20 types)",
    )
    ood_percentile: float = setting(
        PERCENTILE,
        "flag a cell 'ood' when its distance is above this percentile of the training "
        "rows' own (leave-one-out) distances",
    )
    interval_level: float = setting(
        LEVEL,
        "level of the prediction intervals (layers lower/upper): the share of cells like the "
        "training cells whose measured value falls inside; one of the stored levels "
        "0.5, 0.8, 0.9, 0.95, 0.99",
    )
    parquet_intervals: bool = setting(
        False,
        "write_parquet: also columns <gene>|lower and <gene>|upper (triples the file)",
    )
    genes: str = setting(
        "varying",
        "varying (genes whose model is not constant; a constant gene's prediction is its "
        "intercept in the model store) | all | predictable (CV r2 beats every baseline)",
    )
    write_h5ad: bool = setting(
        True, "write <name>.h5ad (AnnData, float32, reads one gene or one cell fast)"
    )
    write_parquet: bool = setting(
        False, "write <name>.parquet (wide: cells x genes + metadata; up to ~10,000 cells)"
    )
    chunk_cells: int = setting(1000, "cells per chunk / Parquet row group (bounds memory)")
    strict: bool = setting(
        False,
        "likely mistakes in an input table (a feature ~1000x off the training's, a column "
        "that almost names a feature, a trailing delimiter, a feature no cell has) are "
        "errors, not warnings",
    )
    implausible: str = setting(
        "error",
        "a feature value outside its plausible range: error (stop, naming it) | drop_value "
        "(treat it as missing, one warning per column)",
    )
    align: str = setting(
        "auto",
        "batch alignment onto the training cells (docs/transfer.md), per value of an input's "
        "'batch' column (none = one batch; < 20 cells: not aligned): auto (em_pooled within "
        "a known class; without one em_zscore if the batch holds both Exc and Inh cells, "
        "else none) | none | em_zscore | em_pooled | em_shift | em_scale | em_mixed | zscore",
    )
    known_class: str = setting(
        "",
        "what is known of every cell without a 'known_class' value: Exc, Inh, a family or "
        "a Cre line ('' = nothing); restricts alignment and identity to compatible families",
    )
    temper: bool = setting(
        True,
        "temper an aligned batch's identity probabilities by its shift, T = 1 + 0.33 x RMS "
        "shift in training SD (docs/transfer.md; an unshifted batch keeps T = 1, the most "
        "probable class never changes)",
    )

    def check(self) -> None:
        self.missing = self.missing.strip().lower()
        self.genes = self.genes.strip().lower()
        if self.missing not in MISSING_POLICIES:
            raise InputError(
                f"{self.where('missing')}: {self.missing!r} is not one of {list(MISSING_POLICIES)}"
            )
        self.implausible = self.implausible.strip().lower()
        if self.implausible not in IMPLAUSIBLE_POLICIES:
            raise InputError(
                f"{self.where('implausible')}: {self.implausible!r} is not one of "
                f"{list(IMPLAUSIBLE_POLICIES)}"
            )
        if self.genes not in GENE_SETS:
            raise InputError(
                f"{self.where('genes')}: {self.genes!r} is not one of {list(GENE_SETS)}"
            )
        if not math.isfinite(self.extrapolation_tolerance) or self.extrapolation_tolerance < 0:
            raise InputError(
                f"{self.where('extrapolation_tolerance')}: {self.extrapolation_tolerance} "
                "is not a number >= 0"
            )
        if self.ood_neighbors < 1:
            raise InputError(f"{self.where('ood_neighbors')}: {self.ood_neighbors} is not >= 1")
        if not (math.isfinite(self.ood_percentile) and 0 <= self.ood_percentile < 100):
            raise InputError(
                f"{self.where('ood_percentile')}: {self.ood_percentile} is not a number from "
                "0 to below 100"
            )
        if self.interval_level not in LEVELS:
            raise InputError(
                f"{self.where('interval_level')}: {self.interval_level} is not one of the "
                f"levels a model store holds, {list(LEVELS)}"
            )
        if isinstance(self.on_demand_null, str):
            if self.on_demand_null.strip().lower() != "train":
                raise InputError(
                    f"{self.where('on_demand_null')}: {self.on_demand_null!r} is not a number "
                    "or 'train'"
                )
            self.on_demand_null = "train"
        elif self.on_demand_null < 0:
            raise InputError(f"{self.where('on_demand_null')}: {self.on_demand_null} is negative")
        self.align = self.align.strip().lower()
        if self.align not in ALIGN_METHODS:
            raise InputError(
                f"{self.where('align')}: {self.align!r} is not one of {list(ALIGN_METHODS)}"
            )
        if self.chunk_cells < 1:
            raise InputError(f"{self.where('chunk_cells')}: {self.chunk_cells} is not >= 1")

    def formats(self, primary: str | None = None) -> list[str]:
        """File suffixes to write: ``primary`` (the ``--output`` file's) and those switched on."""
        on = [
            s for s, flag in ((".h5ad", self.write_h5ad), (".parquet", self.write_parquet)) if flag
        ]
        return [primary] + [s for s in on if s != primary] if primary else on

    @property
    def on_demand_permutations(self) -> int | None:
        """The null size of a set fitted on demand (None = the store's own)."""
        return None if self.on_demand_null == "train" else int(self.on_demand_null)

    @property
    def only_predictable(self) -> bool:
        """Predict only the genes that beat every baseline (``genes: predictable``)."""
        return self.genes == "predictable"


__all__ = ["GENE_SETS", "IMPLAUSIBLE_POLICIES", "MISSING_POLICIES", "PredictSettings"]
