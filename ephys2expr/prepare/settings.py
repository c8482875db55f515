"""The prepare settings (``params.yaml`` section ``prepare``), each defined once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ephys2expr import paths
from ephys2expr.errors import InputError
from ephys2expr.features import ALL_FEATURES, CORE_FEATURES, PAIRED_FEATURES
from ephys2expr.settings import Settings, setting

TYPE_MEAN_SOURCES = ("rds", "online_table3")  # one row per cell type
PAIRED_SOURCES = ("scala2021", "paired")  # one row per cell (Patch-seq)
TRAINING_SOURCES = TYPE_MEAN_SOURCES + PAIRED_SOURCES
# The species of each source's training rows (train_types ``species``; the model store's
# provenance; predict flags cells of another species). Your own paired cells: the metadata's
# ``species`` column if it has one, else "unknown" (no check).
SOURCE_SPECIES = {"rds": "mouse", "online_table3": "mouse", "scala2021": "mouse"}
PAIRED_FILES = ("features", "counts", "metadata")
PAIRED_COLUMNS = {
    "id": "cell_id",
    "library": "library_size",
    "group": "group",
    "type": "type",
    "family": "",
}
# Paired features: the type-mean model's 11 minus adratio (Scala has no such feature) plus sag;
# all 11 are in the Allen per-cell tables, so the paired model predicts Allen cells too.
PAIRED_DEFAULT_FEATURES = [f for f in CORE_FEATURES if f != "adratio"] + ["sag"]


@dataclass
class PrepareSettings(Settings):
    """Which training tables, which features (in order) and which genes to keep.

    Two sources are prepared side by side (dvc.yaml ``foreach``, one folder each under
    ``data/prepared/<source>``): ``training_source`` (cell-type means) and ``paired_source``
    (Patch-seq cells); ``python -m stages.prepare --source NAME`` prepares one of them.
    """

    SECTION: ClassVar[str] = "prepare"

    training_source: str = setting(
        "rds",
        "the type-mean model's table: rds = the lab's 20-type table (aibs_cre_expr_ephys.rda) "
        "| online_table3 = Bomkamp et al. 2019 Online Table 3 layout (file: online_table3)",
    )
    paired_source: str = setting(
        "scala2021",
        "the per-cell model's Patch-seq cells: scala2021 = Scala et al. 2021 (data/raw/"
        "scala2021) | paired = your own cells (paired_files, paired_columns, paired_layer)",
    )
    online_table3: str = setting(
        str(paths.ONLINE_TABLE3), "Online Table 3 layout CSV (source online_table3)"
    )
    features: list[str] = setting(
        list(CORE_FEATURES),
        "features of the type-mean sources, in this order (a list or a comma-separated "
        "string; names in ephys2expr/features.py)",
    )
    min_max_log2: float = setting(0.0, "keep genes whose largest type-mean log2 expression >= this")
    top_variable: int = setting(0, "keep only the N most variable genes (0 = keep all)")
    paired_features: list[str] = setting(
        PAIRED_DEFAULT_FEATURES, "features of the paired sources (scala2021, paired), in order"
    )
    min_detected: float = setting(
        0.1, "paired sources: keep genes with a count > 0 in at least this share of cells"
    )
    paired_files: dict[str, str] = setting(
        dict.fromkeys(PAIRED_FILES, ""),
        "source paired: the three files (CSV/TSV/Parquet; counts may be .h5ad), see docs/train-your-patchseq.md",
    )
    paired_columns: dict[str, str] = setting(
        dict(PAIRED_COLUMNS),
        "source paired: column names - id (features and metadata tables), and the metadata's "
        "library (library size for CPM), group (animal), type and family ('' = the type)",
    )
    paired_layer: str = setting("", "source paired, .h5ad counts: the layer holding them ('' = X)")

    def check(self) -> None:
        for key, allowed in (
            ("training_source", TYPE_MEAN_SOURCES),
            ("paired_source", PAIRED_SOURCES),
        ):
            if getattr(self, key) not in allowed:
                raise InputError(
                    f"{self.where(key)}: unknown value {getattr(self, key)!r} "
                    f"(expected {' or '.join(allowed)})"
                )
        if self.training_source == "online_table3" and not self.online_table3.strip():
            raise InputError(f"{self.where('online_table3')}: no file given")
        for key in ("features", "paired_features"):
            self._check_features(key)
        if self.top_variable < 0:
            raise InputError(f"{self.where('top_variable')}: {self.top_variable} < 0")
        if not 0.0 <= self.min_detected <= 1.0:
            raise InputError(f"{self.where('min_detected')}: {self.min_detected} is not in [0, 1]")
        for key, names in (("paired_files", PAIRED_FILES), ("paired_columns", PAIRED_COLUMNS)):
            value = getattr(self, key)
            if not isinstance(value, dict) or sorted(value) != sorted(names):
                raise InputError(f"{self.where(key)}: expected the keys {list(names)}, got {value}")
            setattr(self, key, {k: "" if value[k] is None else str(value[k]) for k in names})
        empty = [k for k, v in self.paired_files.items() if not v.strip()]
        if self.paired_source == "paired" and empty:
            raise InputError(f"{self.where('paired_files')}: source paired needs the {empty} file")
        blank = [k for k, v in self.paired_columns.items() if k != "family" and not v.strip()]
        if blank:
            raise InputError(f"{self.where('paired_columns')}: no column name for {blank}")

    def _check_features(self, key: str) -> None:
        names, where = getattr(self, key), self.where(key)
        known = ALL_FEATURES if key == "features" else PAIRED_FEATURES
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InputError(f"{where}: unknown feature(s) {unknown}; known: {known}")
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise InputError(f"{where}: feature(s) listed twice {dup}")
        if not names:
            raise InputError(f"{where}: the feature list is empty")
