"""Every path the pipeline reads or writes, in one place (relative to the project root)."""

import stat
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DATA = Path("data")
RAW = DATA / "raw"
PREPARED = DATA / "prepared"
MODELS = DATA / "models"  # one model store per training source: MODELS / <source>
PREDICTIONS = DATA / "predictions"
VALIDATION = DATA / "validation"
METRICS = Path("metrics")
REPORTS = Path("reports")  # detailed summaries beside the headline metrics
PLOTS = Path("plots")

# raw inputs
TRAINING_RDS = RAW / "training" / "aibs_cre_expr_ephys.rda"
ONLINE_TABLE3 = RAW / "training" / "online_table3_excerpt.csv"
GENE_NAMES_RDS = RAW / "genes" / "tasic_gene_names.rda"
ENTREZ_SYMBOLS = RAW / "genes" / "entrenz_symbol_s.csv"
AIBS_EPHYS_V6 = RAW / "aibs" / "aibs_aggregated_ephys_v6.csv"
AIBS_EPHYS_V10 = RAW / "aibs" / "aibs_aggregated_ephys_plus_morpho_v10.csv"
AIBS_EPHYS_RDS = RAW / "aibs" / "aibs_ephys.rda"
DRIVER_PALETTE = RAW / "aibs" / "driver_lines_palette.csv"
TASIC_EXPR = RAW / "tasic2016" / "aibsExprData.rda"
TASIC_META = RAW / "tasic2016" / "aibsExprMeta.rda"
TASIC_ANNO = RAW / "tasic2016" / "tasic_2016_anno.RData"
CADWELL_EXPR = RAW / "cadwell2016" / "cadwell_expr.rda"
CADWELL_META = RAW / "cadwell2016" / "cadwell_meta.rda"
CADWELL_EPHYS = RAW / "cadwell2016" / "IntPhysiologyFinal.mat"
CADWELL_SDRF = RAW / "cadwell2016" / "E-MTAB-4092.sdrf.txt"


def model_store(source: str) -> Path:
    """The model store of a training source (``data/models/<source>``)."""
    return MODELS / source


def in_raw_dir(raw_dir: Path | str, raw_path: Path) -> Path:
    """``raw_path`` (one of the constants above) rebased onto another raw folder."""
    return Path(raw_dir) / raw_path.relative_to(RAW)


def file_kind(mode: int) -> str:
    """What a path whose ``st_mode`` is ``mode`` is, for messages: ``a folder``, ``a named
    pipe``, ``a socket``, ``a character device``, ``a block device``, ``a file``."""
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISREG, "a file"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a file")
