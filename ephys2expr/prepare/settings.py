"""The prepare settings (``params.yaml`` section ``prepare``), each defined once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ephys2expr import paths
from ephys2expr.errors import InputError
from ephys2expr.features import ALL_FEATURES, CORE_FEATURES, PAIRED_FEATURES
from ephys2expr.settings import NAME, Settings, setting

TYPE_MEAN_SOURCES = ("rds", "online_table3")  # one row per cell type
BUILTIN_PAIRED = ("scala2021",)  # one row per cell (Patch-seq), read from data/raw
BUILTIN_SOURCES = TYPE_MEAN_SOURCES + BUILTIN_PAIRED
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
# Keys of one entry of prepare.paired: the three files, then optional columns and layer.
PAIRED_ENTRY = (*PAIRED_FILES, "columns", "layer")
# Paired features: the type-mean model's 11 minus adratio (Scala has no such feature) plus sag;
# all 11 are in the Allen per-cell tables, so the paired model predicts Allen cells too.
PAIRED_DEFAULT_FEATURES = [f for f in CORE_FEATURES if f != "adratio"] + ["sag"]


@dataclass
class PrepareSettings(Settings):
    """Which training tables, which features (in order) and which genes to keep.

    Every source of ``sources`` is prepared, trained and predicted side by side (dvc.yaml
    ``foreach``, one folder each: ``data/prepared/<source>``, ``data/models/<source>``): a
    type-mean table (``rds``, ``online_table3``), ``scala2021`` or your own Patch-seq cells
    in the generic layout (a name defined in ``paired``); ``python -m stages.prepare
    --source NAME`` prepares one of them.
    """

    SECTION: ClassVar[str] = "prepare"
    MOVED: ClassVar[dict[str, str]] = {
        "training_source": "prepare.type_mean_source",
        "paired_source": "prepare.per_cell_source",
    }

    sources: list[str] = setting(
        ["rds", "scala2021"],
        "every training source, each prepared, trained and predicted beside the others "
        "(dvc.yaml foreach): rds | online_table3 | scala2021 | a name defined in paired",
    )
    type_mean_source: str = setting(
        "rds",
        "the type-mean model predict and validate use (one of sources): rds = the lab's "
        "20-type table (aibs_cre_expr_ephys.rda) | online_table3 = Bomkamp et al. 2019 Online "
        "Table 3 layout (file: online_table3)",
    )
    per_cell_source: str = setting(
        "scala2021",
        "the per-cell model validate compares with the type-mean one (one of sources): "
        "scala2021 = Scala et al. 2021 (data/raw/scala2021) | a name defined in paired",
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
        PAIRED_DEFAULT_FEATURES, "features of the per-cell sources (scala2021, paired), in order"
    )
    min_detected: float = setting(
        0.1, "per-cell sources: keep genes with a count > 0 in at least this share of cells"
    )
    paired: dict[str, dict] = setting(
        {},
        "your own Patch-seq sources in the generic layout, name -> {features: FILE, counts: "
        "FILE, metadata: FILE, columns: {id, library, group, type, family} (optional, each "
        "defaults to cell_id, library_size, group, type, '' = the type), layer: '' (.h5ad "
        "counts: the layer holding them; '' = X)}; list the name in sources to train it "
        "(docs/train-your-patchseq.md)",
    )

    recordings: dict[str, str] = setting(
        {"examples": "data/raw/recordings"},
        "raw recordings to extract features from (dvc.yaml features@<name>, "
        "stages/features.py): name -> a folder (searched recursively) or file of .abf / .nwb "
        "recordings; the table goes to data/features/<name>.csv, which predict takes as is",
    )

    def check(self) -> None:
        self._check_paired()
        self._check_recordings()
        where = self.where("sources")
        if not self.sources:
            raise InputError(f"{where}: the list is empty")
        for name in self.sources:
            if self.kind(name) is None:
                raise InputError(
                    f"{where}: unknown source {name!r} (expected one of {list(BUILTIN_SOURCES)} "
                    f"or a name defined in prepare.paired: {sorted(self.paired)})"
                )
        if len(set(self.sources)) != len(self.sources):
            dup = sorted({n for n in self.sources if self.sources.count(n) > 1})
            raise InputError(f"{where}: source(s) listed twice {dup}")
        for key, kinds, what in (
            ("type_mean_source", ("type_mean",), "a type-mean source (rds or online_table3)"),
            ("per_cell_source", ("scala2021", "paired"), "a per-cell source"),
        ):
            value = getattr(self, key)
            if self.kind(value) not in kinds:
                raise InputError(f"{self.where(key)}: unknown value {value!r} (expected {what})")
            if value not in self.sources:
                raise InputError(
                    f"{self.where(key)}: {value!r} is not in prepare.sources {self.sources}"
                )
        if "online_table3" in self.sources and not self.online_table3.strip():
            raise InputError(f"{self.where('online_table3')}: no file given")
        for key in ("features", "paired_features"):
            self._check_features(key)
        if self.top_variable < 0:
            raise InputError(f"{self.where('top_variable')}: {self.top_variable} < 0")
        if not 0.0 <= self.min_detected <= 1.0:
            raise InputError(f"{self.where('min_detected')}: {self.min_detected} is not in [0, 1]")

    def kind(self, source: str) -> str | None:
        """``type_mean``, ``scala2021`` or ``paired`` (generic layout); None if unknown."""
        if source in TYPE_MEAN_SOURCES:
            return "type_mean"
        if source in BUILTIN_PAIRED:
            return "scala2021"
        return "paired" if source in self.paired else None

    def source_settings(self, source: str) -> dict:
        """The settings the prepared tables of ``source`` depend on (its report's
        ``settings``): not the choice of sources, nor another source's files."""
        if self.kind(source) == "type_mean":
            keys = ["features", "min_max_log2", "top_variable"]
            keys += ["online_table3"] if source == "online_table3" else []
            out = {k: getattr(self, k) for k in keys}
        else:
            out = {"paired_features": self.paired_features, "min_detected": self.min_detected}
            if self.kind(source) == "paired":
                out["paired"] = {source: self.paired[source]}
        return out

    def _check_paired(self) -> None:
        """Each ``paired`` entry: the three files given, known keys, columns completed."""
        if not isinstance(self.paired, dict):
            raise InputError(f"{self.where('paired')}: expected a mapping name -> files/columns")
        out = {}
        for name, entry in self.paired.items():
            where = f"{self.where('paired')}.{name}"
            if not NAME.match(str(name)) or name in BUILTIN_SOURCES:
                raise InputError(
                    f"{where}: not a usable source name (letters, digits, '_', '-', '.'; not "
                    f"one of {list(BUILTIN_SOURCES)})"
                )
            if not isinstance(entry, dict):
                raise InputError(f"{where}: expected a mapping with keys {list(PAIRED_ENTRY)}")
            unknown = [k for k in entry if k not in PAIRED_ENTRY]
            if unknown:
                raise InputError(f"{where}.{unknown[0]}: unknown key (known: {list(PAIRED_ENTRY)})")
            files = {k: "" if entry.get(k) is None else str(entry[k]) for k in PAIRED_FILES}
            empty = [k for k, v in files.items() if not v.strip()]
            if empty:
                raise InputError(f"{where}.{empty[0]}: no file given")
            columns = entry.get("columns") or {}
            if not isinstance(columns, dict):
                raise InputError(f"{where}.columns: expected a mapping, got {columns!r}")
            unknown = [k for k in columns if k not in PAIRED_COLUMNS]
            if unknown:
                raise InputError(
                    f"{where}.columns.{unknown[0]}: unknown key (known: {list(PAIRED_COLUMNS)})"
                )
            columns = {
                k: str(default if columns.get(k) is None else columns[k])
                for k, default in PAIRED_COLUMNS.items()
            }
            blank = [k for k, v in columns.items() if k != "family" and not v.strip()]
            if blank:
                raise InputError(f"{where}.columns.{blank[0]}: no column name")
            layer = "" if entry.get("layer") is None else str(entry["layer"])
            out[str(name)] = {**files, "columns": columns, "layer": layer}
        self.paired = out

    def _check_recordings(self) -> None:
        where = self.where("recordings")
        if not isinstance(self.recordings, dict):
            raise InputError(f"{where}: expected a mapping name -> folder or file")
        for name, folder in self.recordings.items():
            if not NAME.match(str(name)):
                raise InputError(
                    f"{where}.{name}: not a usable name (letters, digits, '_', '-', '.')"
                )
            if not isinstance(folder, str) or not folder.strip():
                raise InputError(f"{where}.{name}: expected a folder or file, got {folder!r}")

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
