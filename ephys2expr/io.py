"""Atomic, deterministic writers: nothing half-written is ever left behind.

Every writer writes to a temporary file in the destination folder and renames
it into place only when the write succeeded. A set of files that must change together
(the model store) is written into a new folder swapped in whole (:func:`atomic_dir`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
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


# Temp folders of :func:`atomic_dir` are siblings of the target named
# ``.<name>.new-<random>`` (being written) or ``.<name>.old-<random>`` (the replaced
# folder, deleted right after the swap). Hidden, so that no loader ever looks there.
_DIR_TEMP = (".{}.new-", ".{}.old-")


def stale_dir_temps(path: str | os.PathLike) -> list[Path]:
    """Temp folders that a killed :func:`atomic_dir` left beside ``path``."""
    path = Path(os.path.abspath(path))
    if not path.parent.is_dir():
        return []
    prefixes = tuple(p.format(path.name) for p in _DIR_TEMP)
    return sorted(c for c in path.parent.iterdir() if c.name.startswith(prefixes))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty folder beside ``path``; swap it in for ``path`` on success.

    On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``: readers see the old folder or
    the new one, nothing in between. Where that call is missing (other systems, some file
    systems) it is two renames, the old folder aside and the new one into place; between
    them (microseconds) ``path`` does not exist, and a process killed there leaves no
    ``path`` but both complete folders beside it. The replaced folder is deleted last.
    Temp folders of killed runs are removed on entry, so one writer at a time is assumed
    (``dvc repro`` holds a repo lock). Files are never written through an existing path,
    so DVC's hardlink/symlink cache modes are safe. On any exception the new folder is
    removed and ``path`` is untouched.
    """
    path = Path(os.path.abspath(path))
    if path.is_symlink():  # replace the folder the link points to, keep the link
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_dir_temps(path):
        shutil.rmtree(stale, ignore_errors=True)
    new = Path(tempfile.mkdtemp(prefix=_DIR_TEMP[0].format(path.name), dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(new, 0o777 & ~umask)  # mkdtemp creates 0700; outputs should be readable
    try:
        yield new
        if not path.exists():
            os.rename(new, path)
        elif _exchange(new, path):
            shutil.rmtree(new)  # now holds the replaced folder
        else:
            # rename(2) may replace an empty folder: the reserved name takes the old one
            old = tempfile.mkdtemp(prefix=_DIR_TEMP[1].format(path.name), dir=path.parent)
            os.rename(path, old)
            os.rename(new, path)
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2``); False where that is not available."""
    import ctypes
    import ctypes.util
    import errno

    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # glibc before 2.28
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # file system cannot exchange
        return False
    raise OSError(err, os.strerror(err), os.fspath(a), None, os.fspath(b))


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


def prune_folder(folder: str | os.PathLike, keep: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove the files of ``folder`` (not below it, not hidden) that are not in ``keep``.

    A stage whose DVC output is a whole folder and persists (``persist: true``, so that a
    failed run keeps the last good outputs) calls this after a successful run, so that the
    folder holds this run's outputs only, never those of an earlier setting (a Parquet file
    after ``write_parquet`` was turned off). Hidden files (live temporary files) are left.
    """
    folder = Path(folder)
    kept = {Path(p).resolve() for p in keep}
    removed = []
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file() or path.resolve() in kept:
                continue
            path.unlink()
            removed.append(path)
    return removed
