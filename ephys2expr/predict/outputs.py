"""All outputs of a predict run as one set: checked before the first write, committed together.

:class:`OutputSet` is a small transaction over files:

* :meth:`OutputSet.plan` checks every output path before anything is written - not a
  directory, its folder creatable and writable (proved by creating the temporary file it
  will be written to), not an input file, not inside the model store, no path twice - and
  raises one :class:`~ephys2expr.errors.InputError` line naming the path otherwise.
* Writers write to :meth:`OutputSet.temp` paths (hidden files beside the destination).
* Leaving the ``with`` block normally renames every temporary file into place; any
  exception (including SIGTERM, which the stage turns into ``SystemExit``) removes every
  temporary file and every folder the set created, so a failed run leaves nothing.

Temporary names carry the host and process id (``.<name>.<host>-<pid>.<random>.tmp``), so
temporary files of a run that was killed with SIGKILL are recognised and removed by the
next run that writes into the same folder (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from ephys2expr.errors import InputError

log = logging.getLogger("ephys2expr.predict")

# Temporary files written by ephys2expr.io.atomic_path before temp names carried a pid:
# removed when untouched for this long (a live writer touches its file every chunk).
LEGACY_TEMP_AGE_S = 600
_HOST = hashlib.md5(socket.gethostname().encode()).hexdigest()[:8]
_TAG = re.compile(r"\.([0-9a-f]{8})-(\d+)\.")


_SIGNALS: list[int] = []  # termination signals received (see stop_on_sigterm)


def stop_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so an :class:`OutputSet` removes its temporary files.

    The handler raises ``SystemExit(143)``; in case a library swallows that exception (an
    exception raised inside C callbacks can be), the signal is also remembered and
    :func:`raise_if_stopped` - called before each block is written and before committing -
    raises it again, so an interrupted run never commits.
    """

    def handler(signum, frame):
        _SIGNALS.append(signum)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def raise_if_stopped() -> None:
    """Raise ``SystemExit`` if a termination signal arrived (see :func:`stop_on_sigterm`)."""
    if _SIGNALS:
        raise SystemExit(128 + _SIGNALS[0])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _is_stale(path: Path, names: set[str], now: float) -> bool:
    """A temporary file of a dead run: tagged with this host and a dead pid, or an untagged
    ``.<name>.XXXX.tmp`` of one of ``names`` not written to for :data:`LEGACY_TEMP_AGE_S`."""
    fname = path.name
    if not (fname.startswith(".") and fname.endswith(".tmp")):
        return False
    tag = _TAG.search(fname)
    if tag is not None:
        return tag.group(1) == _HOST and not _pid_alive(int(tag.group(2)))
    base = fname.lstrip(".")
    if not any(base.startswith(n + ".") for n in names):
        return False
    try:
        return now - path.stat().st_mtime > LEGACY_TEMP_AGE_S
    except FileNotFoundError:
        return False


def remove_stale_temps(folder: Path, names: Iterable[str] = ()) -> list[Path]:
    """Remove temporary files that killed runs left in ``folder``; return what was removed."""
    names, now, removed = set(names), time.time(), []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for path in entries:
        if path.is_file() and _is_stale(path, names, now):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                continue
    if removed:
        log.info("removed %d temporary file(s) of killed runs in %s", len(removed), folder)
    return removed


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


class OutputSet:
    """Every file a run writes, checked first and committed together (see module doc).

    Parameters
    ----------
    inputs : iterable of path-like
        Files the run reads: no output may be one of them (same path, symlink or hard link).
    protected_dirs : iterable of path-like
        Folders no output may be inside (the model store).
    """

    def __init__(
        self,
        inputs: Iterable[str | os.PathLike] = (),
        protected_dirs: Iterable[str | os.PathLike] = (),
    ) -> None:
        self.inputs = [Path(p) for p in inputs]
        self.protected = [_resolved(p) for p in protected_dirs]
        self._temps: dict[Path, Path] = {}  # resolved destination -> temporary file
        self._created_dirs: list[Path] = []
        self._cleaned: set[Path] = set()
        self._claimed: set[Path] = set()  # asked for with temp(): committed at the end

    # ------------------------------------------------------------------ checks
    def _check(self, path: Path) -> Path:
        real = _resolved(path)
        if real in self._temps:
            raise InputError(f"{path}: this output path is given twice")
        if path.is_dir():
            raise InputError(f"{path}: is a directory, expected a file path")
        for src in self.inputs:
            same = _resolved(src) == real
            if not same and path.exists() and src.exists():
                same = os.path.samefile(src, path)
            if same:
                raise InputError(f"{path}: output would overwrite the input {src}")
        for folder in self.protected:
            if real == folder or folder in real.parents:
                raise InputError(f"{path}: output would be written inside the model store {folder}")
        return real

    def _make_parents(self, path: Path) -> None:
        missing = []
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        if not parent.is_dir():
            raise InputError(f"{path}: {parent} is not a folder")
        for folder in reversed(missing):
            folder.mkdir()
            self._created_dirs.append(folder)

    def plan(self, *paths: str | os.PathLike | None) -> None:
        """Check ``paths`` (``None`` skipped) and reserve a temporary file for each.

        Raises
        ------
        InputError
            One line naming the first bad path; temporary files reserved so far are kept
            until the ``with`` block ends (which removes them).
        """
        for p in paths:
            if p is None:
                continue
            path = Path(p)
            real = self._check(path)
            try:
                self._make_parents(path)
                if real.parent not in self._cleaned:
                    remove_stale_temps(real.parent, [path.name])
                    self._cleaned.add(real.parent)
                fd, tmp = tempfile.mkstemp(
                    prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=real.parent
                )
            except OSError as exc:
                raise InputError(f"{path}: cannot write here ({exc.strerror})") from None
            os.close(fd)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs should be readable
            self._temps[real] = Path(tmp)

    def temp(self, path: str | os.PathLike) -> Path:
        """The temporary file to write for the destination ``path`` (planned if it is not yet).

        Only destinations asked for here are committed: a planned output that the run turns
        out not to produce (a plot without data) is discarded, not left empty.
        """
        real = _resolved(path)
        if real not in self._temps:
            self.plan(path)
        self._claimed.add(real)
        return self._temps[real]

    @property
    def destinations(self) -> list[Path]:
        """The planned destination paths (resolved), in plan order."""
        return list(self._temps)

    # ------------------------------------------------------------------ commit / abort
    def commit(self) -> None:
        """Rename every temporary file into place (all were written: nothing can fail half-way
        but the renames, which stay in their own folders)."""
        raise_if_stopped()
        for dst, tmp in self._temps.items():
            if dst in self._claimed:
                os.replace(tmp, dst)
            else:
                tmp.unlink(missing_ok=True)
        self._temps.clear()
        self._created_dirs.clear()

    def abort(self) -> None:
        """Remove every temporary file and every folder this set created (if left empty)."""
        for tmp in self._temps.values():
            tmp.unlink(missing_ok=True)
        self._temps.clear()
        for folder in reversed(self._created_dirs):
            try:
                folder.rmdir()
            except OSError:
                pass
        self._created_dirs.clear()

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
                where = exc.filename or "output"
                raise InputError(f"{where}: writing failed ({exc.strerror or exc})") from None
            return
        try:
            self.commit()
        except OSError as exc:
            self.abort()
            raise InputError(
                f"{exc.filename}: cannot move output into place ({exc.strerror})"
            ) from None


__all__ = ["OutputSet", "raise_if_stopped", "remove_stale_temps", "stop_on_sigterm"]
