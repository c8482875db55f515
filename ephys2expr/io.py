"""Atomic, deterministic writers: nothing half-written is ever left behind.

Every writer writes to a temporary file in the destination folder and renames
it into place only when the write succeeded. A set of files that must change together
(the model store) is written into a new folder swapped in whole (:func:`atomic_dir`).

Temporaries are locked while their process lives and removed when it ends, however it
ends (:mod:`ephys2expr.temps`). A disk full (or any other OS error) while writing is one
:class:`~ephys2expr.errors.WriteError` line naming the destination.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError, WriteError
from ephys2expr.temps import (
    DIR_TEMP,
    Temp,
    raise_if_stopped,
    remove_dead_temps,
    signals_deferred,
)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a locked temporary path next to ``path``; rename it to ``path`` on success.

    Temporaries of ``path`` that dead runs left are removed first. On any exception the
    temporary file is removed and ``path`` is untouched. A ``path`` that is itself a live
    :class:`~ephys2expr.temps.Temp` of this process is written in place (its owner renames
    it; a temporary of a temporary would leave it unlocked).
    """
    path = Path(path)
    if Temp.is_live(path):  # already a temporary of this process (an OutputSet's): in place
        yield path
        return
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(path.parent, [path.name])
    with _temporary(path.parent, path.name) as temp:
        yield temp.path
        with signals_deferred():
            temp.replace(path)


@contextlib.contextmanager
def _temporary(parent: Path, name: str, directory: bool = False) -> Iterator[Temp]:
    """A locked :class:`Temp` for ``name`` in ``parent``, removed if anything inside fails
    and released in any case (the one cleanup of :func:`atomic_path` and :func:`atomic_dir`)."""
    temp = None
    try:  # created inside: a signal right after creation still removes it
        temp = Temp.create(parent, name, directory=directory)
        yield temp
    except BaseException:
        if temp is not None:
            temp.discard()
        raise
    finally:
        if temp is not None:
            temp.release()


_KINDS = {
    stat.S_IFDIR: "folder",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket",
}


def check_output_file(path: str | os.PathLike) -> None:
    """Raise :class:`InputError` unless a new regular file may be renamed onto ``path``.

    ``path`` may be absent, a regular file, or a symbolic link (the link itself is replaced,
    its target never written) to a regular file or to nothing. A folder, a device, a FIFO or
    a socket - or a link to one (``/dev/stdout``) - is refused: an output never replaces
    them (as root, ``--report /dev/null`` would otherwise replace ``/dev/null``).
    """
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            mode = os.stat(path).st_mode
    except OSError:  # absent, or a dangling link: nothing to protect
        return
    if stat.S_ISREG(mode):
        return
    kind = _KINDS.get(stat.S_IFMT(mode), "special file")
    if kind == "folder":
        raise InputError(f"{path}: is a directory, expected a file path")
    raise InputError(
        f"{path}: is a {kind}, not a regular file; outputs never replace devices, FIFOs or "
        "sockets: name a file"
    )


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OS error raised inside (disk full, quota, read-only ...) into one
    :class:`~ephys2expr.errors.WriteError` line naming ``path``."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(path, exc.strerror or str(exc) or type(exc).__name__) from None


def stale_dir_temps(path: str | os.PathLike) -> list[Path]:
    """Temp folders of :func:`atomic_dir` beside ``path`` (of a running or a killed save)."""
    path = Path(os.path.abspath(path))
    if not path.parent.is_dir():
        return []
    prefixes = tuple(p.format(path.name) for p in DIR_TEMP)
    return sorted(c for c in path.parent.iterdir() if c.name.startswith(prefixes))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty folder beside ``path``; swap it in for ``path`` on success.

    On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``: readers see the old folder or
    the new one, nothing in between. Where that call is missing (other systems, some file
    systems) it is two renames, the old folder aside and the new one into place; between
    them (microseconds) ``path`` does not exist, and a process killed there leaves no
    ``path`` but both complete folders beside it. The replaced folder is deleted last.
    The new folder is locked like every :class:`Temp`; temp folders of dead runs are removed
    on entry, a live run's are not. SIGTERM/SIGINT wait until the swap is done. Files are
    never written through an existing path, so DVC's hardlink/symlink cache modes are safe.
    On any exception the new folder is removed and ``path`` is untouched.
    """
    path = Path(os.path.abspath(path))
    if path.is_symlink():  # a planted link must never redirect a store into its target
        raise InputError(
            f"{path}: is a symbolic link (to {os.path.realpath(path)}); a folder is never "
            "written through a link: name the real folder, or remove the link"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(path.parent, [path.name])
    with _temporary(path.parent, path.name, directory=True) as temp:
        new = temp.path
        yield new
        raise_if_stopped()  # a SIGTERM swallowed while writing: never swap in
        with signals_deferred():
            if not path.exists():
                os.rename(new, path)
            elif _exchange(new, path):
                shutil.rmtree(new, ignore_errors=True)  # now holds the replaced folder
            else:
                # rename(2) may replace an empty folder: the reserved name takes the old one
                old = tempfile.mkdtemp(prefix=DIR_TEMP[1].format(path.name), dir=path.parent)
                os.rename(path, old)
                os.rename(new, path)
                shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2``); False where that is not available."""
    import ctypes
    import ctypes.util

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


def json_md5(obj) -> str:
    """md5 of ``obj``'s canonical JSON (keys sorted, no whitespace), so the same values give
    the same digest however the file holding them is indented."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.md5(text.encode()).hexdigest()


def write_json(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented, key-sorted JSON (stable diffs for ``dvc metrics diff``)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    with atomic_path(path) as tmp, writing(path):
        tmp.write_text(text)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame to Parquet atomically (index kept)."""
    with atomic_path(path) as tmp, writing(path):
        df.to_parquet(tmp, engine="pyarrow", index=True)


def write_csv(df: pd.DataFrame, path: str | os.PathLike, index: bool = True) -> None:
    """Write a DataFrame to CSV atomically with full float precision."""
    with atomic_path(path) as tmp, writing(path):
        df.to_csv(tmp, index=index, float_format="%.10g")


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG atomically, without a timestamp (reproducible bytes)."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp, writing(path):
            fig.savefig(
                tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None}
            )
    finally:
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
    """Read ``params.yaml`` (used by tools outside DVC, e.g. the benchmark), strictly:
    :func:`ephys2expr.settings.read_params`."""
    from ephys2expr.settings import read_params as strict

    return strict(path)


#: the hidden file in which a stage that owns a whole output folder lists what it wrote
OUTPUT_MANIFEST = ".ephys2expr-outputs.json"


def output_manifest(folder: str | os.PathLike) -> list[str]:
    """The file names the previous run listed in ``folder``'s :data:`OUTPUT_MANIFEST`
    (empty if there is none, or it is not a list of plain names)."""
    path = Path(folder) / OUTPUT_MANIFEST
    try:
        names = json.loads(path.read_text()) if path.is_file() else []
    except (OSError, ValueError):
        return []
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str) and n and n == os.path.basename(n)]


def write_manifest(names: Iterable[str | os.PathLike], path: str | os.PathLike) -> None:
    """Write the sorted file names of ``names`` as a manifest (see :func:`prune_folder`)."""
    write_json(sorted({Path(n).name for n in names}), path)


def prune_folder(
    folder: str | os.PathLike, keep: Iterable[str | os.PathLike], previous: Iterable[str]
) -> list[Path]:
    """Remove the files an earlier run listed in its manifest (``previous``, read with
    :func:`output_manifest` before this run replaced it) that this run did not write again.

    A stage whose DVC output is a whole folder that persists calls this after a successful
    run, so that the folder holds this run's outputs only, never those of an earlier setting
    (a Parquet file after ``write_parquet`` was turned off). Only names the stage itself
    wrote are ever removed, and only regular files (not links, folders or anything else):
    a folder the user names (``--out-dir .``) keeps every file of theirs.
    """
    folder = Path(folder)
    kept = {Path(p).name for p in keep}
    removed = []
    for name in sorted(set(previous) - kept):
        path = folder / name
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed
