"""The ``cells:`` section of ``params.yaml``: the per-cell tables both train and predict read.

train derives one feature set from every missing pattern of these tables with at least
``min_features`` features (:func:`~ephys2expr.train.feature_sets.derive_feature_sets`), and
predict applies the store to the same tables; a cell with fewer than ``min_features`` of the
store's features is not predicted. Defined once here so that neither stage reads the other's
settings: an edit of a predict setting never reruns train, and a new input or a new
``min_features`` reruns both (dvc.yaml lists ``cells`` in both stages' params).

Only the Allen tables prepare writes (``data/prepared/<source>/cells_<name>.parquet``) belong
here: they decide train's feature sets. Tables used only to validate transfer to other labs
do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ephys2expr.errors import InputError
from ephys2expr.settings import NAME, Settings, setting


@dataclass
class CellSettings(Settings):
    """Which per-cell tables the pipeline predicts, and the fewest features a cell needs."""

    SECTION: ClassVar[str] = "cells"

    inputs: list[str] = setting(
        ["aibs_v6", "aibs_v10"],
        "prepared input names (data/prepared/<source>/cells_<name>.parquet), a list or "
        "comma-separated: predict applies the store to them, train derives its feature sets "
        "from their missing patterns",
    )
    min_features: int = setting(
        5,
        "a cell with fewer of the store's features is not predicted (predict.missing: "
        "feature_set); train derives a set from every pattern of the inputs with at least "
        "this many",
    )

    def check(self) -> None:
        if self.min_features < 1:
            raise InputError(f"{self.where('min_features')}: {self.min_features} is not >= 1")
        bad = [name for name in self.inputs if not NAME.match(name)]
        if bad:
            raise InputError(
                f"{self.where('inputs')}: {bad[0]!r} is not a prepared input name "
                "(letters, digits, '_', '-', '.')"
            )
        if len(set(self.inputs)) != len(self.inputs):
            raise InputError(f"{self.where('inputs')}: a name is repeated in {self.inputs}")


__all__ = ["CellSettings"]
