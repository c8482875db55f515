"""Atomic, deterministic writers: nothing half-written is ever left behind.

Every writer writes to a temporary file in the destination folder and renames
it into place only when the write succeeded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; outputs should be readable
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented, key-sorted JSON (stable diffs for ``dvc metrics diff``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame to Parquet atomically (index kept)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, engine="pyarrow", index=True)


def write_csv(df: pd.DataFrame, path: str | os.PathLike, index: bool = True) -> None:
    """Write a DataFrame to CSV atomically with full float precision."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=index, float_format="%.10g")


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG atomically, without a timestamp (reproducible bytes)."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def file_checksum(path: str | os.PathLike) -> tuple[str, int]:
    """Return ``(md5 hex digest, size in bytes)`` of a file, read in chunks."""
    digest = hashlib.md5()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 16):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def read_params(path: str | os.PathLike = "params.yaml") -> dict:
    """Read ``params.yaml`` (used by tools outside DVC, e.g. the benchmark)."""
    with open(path) as fh:
        return yaml.safe_load(fh)
