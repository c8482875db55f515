"""The prepare settings (``params.yaml`` section ``prepare``), each defined once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ephys2expr import paths
from ephys2expr.errors import InputError
from ephys2expr.features import ALL_FEATURES, CORE_FEATURES
from ephys2expr.settings import Settings, setting

TRAINING_SOURCES = ("rds", "online_table3")


@dataclass
class PrepareSettings(Settings):
    """Which training table, which features (in order) and which genes to keep."""

    SECTION: ClassVar[str] = "prepare"

    training_source: str = setting(
        "rds",
        "rds = the lab's 20-type table (aibs_cre_expr_ephys.rda) | online_table3 = "
        "Bomkamp et al. 2019 Online Table 3 layout (file: online_table3)",
    )
    online_table3: str = setting(
        str(paths.ONLINE_TABLE3), "Online Table 3 layout CSV (training_source online_table3)"
    )
    features: list[str] = setting(
        list(CORE_FEATURES),
        "features used by every later stage, in this order (a list or a comma-separated "
        "string; names in ephys2expr/features.py)",
    )
    min_max_log2: float = setting(0.0, "keep genes whose largest type-mean log2 expression >= this")
    top_variable: int = setting(0, "keep only the N most variable genes (0 = keep all)")

    def check(self) -> None:
        if self.training_source not in TRAINING_SOURCES:
            raise InputError(
                f"{self.where('training_source')}: unknown value {self.training_source!r} "
                f"(expected {' or '.join(TRAINING_SOURCES)})"
            )
        if self.training_source == "online_table3" and not self.online_table3.strip():
            raise InputError(f"{self.where('online_table3')}: no file given")
        names, where = self.features, self.where("features")
        unknown = [n for n in names if n not in ALL_FEATURES]
        if unknown:
            raise InputError(f"{where}: unknown feature(s) {unknown}; known: {ALL_FEATURES}")
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise InputError(f"{where}: feature(s) listed twice {dup}")
        if not names:
            raise InputError(f"{where}: the feature list is empty")
        if self.top_variable < 0:
            raise InputError(f"{self.where('top_variable')}: {self.top_variable} < 0")
