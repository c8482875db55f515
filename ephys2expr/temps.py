"""Temporary files and folders of atomic writes: locked while their run lives, removed after.

Temporary files and folders (:class:`Temp`, hidden names beside the destination:
``.<name>.<random>.tmp``, ``.<name>.new-<random>``) are locked (``fcntl`` open file
description locks; ``flock`` for folders) by the process writing them for as long as it
lives: the kernel drops the lock when the process
dies, however it dies (SIGKILL, a crash, in another PID namespace or container on the same
file system). A temporary whose lock can be taken therefore belongs to a dead run, and the
next write of the same destination removes it (:func:`remove_dead_temps`); a live run's is
never touched. A process ends its own temporaries on every exit path: on success they are
renamed into place, on any exception (SIGTERM too, see :func:`stop_on_sigterm`) removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import stat
import struct
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: temporaries are never judged dead
    fcntl = None

# Temp folders of :func:`atomic_dir` are siblings of the target named
# ``.<name>.new-<random>`` (being written) or ``.<name>.old-<random>`` (the replaced
# folder, deleted right after the swap). Hidden, so that no loader ever looks there.
DIR_TEMP = (".{}.new-", ".{}.old-")
_ATTEMPTS = 100  # creating a temporary that a concurrent cleaner removed first: try again

_SIGNALS: list[int] = []  # termination signals received (see stop_on_sigterm)
_RESEND = [False]  # a swallowed signal is being sent again (see _redeliver)


# ---------------------------------------------------------------------- signals
def _redeliver(args) -> None:
    """``sys.unraisablehook``: our SIGTERM's ``SystemExit`` swallowed by a finalizer (a
    ``__del__`` or a ``WeakValueDictionary`` callback the garbage collector ran, a
    ``__dealloc__`` of a C extension) is not printed but sent again, from a thread, so that
    it lands in the main program a moment later and unwinds it."""
    exc = args.exc_value
    if isinstance(exc, SystemExit) and _SIGNALS and exc.code == 128 + _SIGNALS[-1]:
        import threading

        _RESEND[0] = True

        timer = threading.Timer(0.05, os.kill, (os.getpid(), _SIGNALS[-1]))
        timer.daemon = True
        timer.start()
        return
    _HOOK[0](args)


_HOOK = [sys.unraisablehook]


def stop_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so that every temporary file is removed.

    The handler raises ``SystemExit(143)``. Python swallows an exception raised while a
    finalizer runs (``Exception ignored in ... SystemExit: 143``: the garbage collector
    runs ``__del__`` methods and weakref callbacks in the middle of any code), so the signal
    is always remembered first and, when swallowed, sent again a moment later
    (:func:`_redeliver`). Until it lands, nothing is committed: every temporary checks it
    before it is created or renamed into place (:meth:`Temp.create`, :meth:`Temp.replace`,
    :func:`raise_if_stopped`). A signal repeated while the first unwinds is only recorded,
    so that it cannot cut a cleanup short.
    """

    def handler(signum, frame):
        first = not _SIGNALS
        _SIGNALS.append(signum)
        if first or _RESEND[0]:
            _RESEND[0] = False
            raise SystemExit(128 + signum)
        # a repeat while the first is unwinding: raising again could cut a cleanup short

    if sys.unraisablehook is not _redeliver:
        _HOOK[0] = sys.unraisablehook
        sys.unraisablehook = _redeliver
    signal.signal(signal.SIGTERM, handler)


def raise_if_stopped() -> None:
    """Raise ``SystemExit`` if a termination signal arrived (see :func:`stop_on_sigterm`)."""
    if _SIGNALS:
        _RESEND[0] = False  # unwinding from here: a resend still on its way is not needed
        raise SystemExit(128 + _SIGNALS[0])


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGTERM and SIGINT back during a few renames that belong together: a signal
    arriving then is handled right after, never between two of them.

    The handlers themselves wait (they only record the signal until the block ends, then
    it is raised again with the handlers it found): Python runs a handler in the main
    thread whichever thread the kernel delivered the signal to, so blocking it in this
    thread (``pthread_sigmask``) did not hold back one that a BLAS or HDF5 thread received
    (a Ctrl-C at the end of predict left a mixed set of old and new files). Outside the
    main thread (no handler can be set there) the block holds nothing back.
    """
    import threading

    if _HELD or threading.current_thread() is not threading.main_thread():
        yield  # nested: the outer block holds them
        return
    arrived: list[int] = []
    held = (signal.SIGTERM, signal.SIGINT)
    before = {s: signal.signal(s, lambda signum, frame: arrived.append(signum)) for s in held}
    _HELD.append(True)
    try:
        yield
    finally:
        _HELD.clear()
        for s, handler in before.items():  # None: a handler not set from Python
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if arrived:  # handled now, by the handler that was there (ignored if it ignores it)
            signal.raise_signal(arrived[0])


_HELD: list[bool] = []  # inside signals_deferred


# ---------------------------------------------------------------------- temporaries
def _try_lock(fd: int, directory: bool) -> bool:
    """Take this temporary's lock without waiting; False if another process holds it.

    Files get an open-file-description write lock (``F_OFD_SETLK``: tied to this descriptor,
    not released when a writer opens and closes the path, and independent of the ``flock``
    HDF5 takes on the file it writes); folders (no write descriptor) get ``flock``.
    """
    try:
        if directory or not hasattr(fcntl, "F_OFD_SETLK"):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # struct flock: l_type, l_whence, l_start, l_len (0: whole file), l_pid (0)
            lock = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, lock)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _same_inode(path, fd: int) -> bool:
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return False
    then = os.fstat(fd)
    return (now.st_ino, now.st_dev) == (then.st_ino, then.st_dev)


class Temp:
    """A temporary file (or folder) beside its destination, locked while this process lives.

    Create with :meth:`create`; the lock is held on an open descriptor until
    :meth:`release` (after the rename into place) or :meth:`discard` (removal).
    """

    _live: set[Path] = set()  # the paths of this process's locked temporaries

    def __init__(self, path: Path, fd: int, directory: bool) -> None:
        self.path, self._fd, self.directory = path, fd, directory
        Temp._live.add(Path(os.path.abspath(path)))

    @classmethod
    def is_live(cls, path: str | os.PathLike) -> bool:
        """Whether ``path`` is a temporary this process holds."""
        return Path(os.path.abspath(path)) in cls._live

    @classmethod
    def create(cls, folder: str | os.PathLike, name: str, directory: bool = False) -> Temp:
        """A new locked temporary for destination ``name`` in ``folder``.

        Race-free against a concurrent :func:`remove_dead_temps`: if a cleaner took the
        lock between creation and locking, it is removing the file; a new one is made.
        """
        # signals wait until the temporary exists as a Temp (or not at all): a SIGTERM
        # between mkdtemp and the Temp would leave an unowned folder behind
        raise_if_stopped()  # a signal swallowed earlier: make nothing new
        temp = None
        try:
            with signals_deferred():
                temp = cls._create(os.fspath(folder), name, directory)
        except BaseException:
            if temp is not None:  # a signal held back, raised as the block ended
                temp.discard()
            raise
        return temp

    @classmethod
    def _create(cls, folder: str, name: str, directory: bool) -> Temp:
        for _ in range(_ATTEMPTS):
            if directory:
                path = tempfile.mkdtemp(prefix=DIR_TEMP[0].format(name), dir=folder)
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            else:
                fd, path = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
            try:
                if (fcntl is None or _try_lock(fd, directory)) and _same_inode(path, fd):
                    # mkstemp/mkdtemp create 0600/0700; outputs should be readable
                    umask = os.umask(0)
                    os.umask(umask)
                    os.chmod(path, (0o777 if directory else 0o666) & ~umask)
                    return cls(Path(path), fd, directory)
            except BaseException:
                os.close(fd)
                if directory:
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
                raise
            os.close(fd)  # a cleaner has it (and removes it): make another
        raise OSError(errno.EAGAIN, "cannot create a locked temporary file", folder)

    def owned(self) -> bool:
        """Whether :attr:`path` is still this temporary (not removed or replaced)."""
        return self._fd is not None and _same_inode(self.path, self._fd)

    def replace(self, destination: str | os.PathLike) -> None:
        """Rename the file into place (``os.replace``), then drop the lock."""
        raise_if_stopped()  # a signal swallowed earlier (see stop_on_sigterm): no commit
        if not self.owned():
            raise OSError(errno.ENOENT, "temporary file removed by another process", self.path)
        os.replace(self.path, destination)
        self.release()

    def release(self) -> None:
        """Drop the lock (close the descriptor); idempotent."""
        if self._fd is not None:
            Temp._live.discard(Path(os.path.abspath(self.path)))
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        """Remove the temporary (if still ours), then drop the lock; idempotent.

        Signals wait until it is gone: a SIGTERM sent again (:func:`_redeliver`) while a
        folder is half removed would otherwise leave the rest of it behind.
        """
        with signals_deferred():
            if self.owned():
                if self.directory:
                    shutil.rmtree(self.path, ignore_errors=True)
                else:
                    self.path.unlink(missing_ok=True)
            self.release()


def is_temp_of(entry: str, names: Iterable[str]) -> bool:
    """Whether file name ``entry`` is a temporary of one of the destinations ``names``:
    ``.<name>.<...>.tmp`` (any number of leading dots: a temp of a temp) or an
    :func:`atomic_dir` folder ``.<name>.new-*`` / ``.<name>.old-*``."""
    if not entry.startswith("."):
        return False
    for name in names:
        if entry.endswith(".tmp") and entry.lstrip(".").startswith(name + "."):
            return True
        if entry.startswith(tuple(p.format(name) for p in DIR_TEMP)):
            return True
    return False


def _remove_if_dead(path: Path) -> bool:
    """Remove ``path`` if no live process holds its lock; True if removed."""
    if fcntl is None:  # pragma: no cover
        return False
    try:
        mode = os.lstat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            return False  # not ours (a symlink, a FIFO ...): never opened, never removed
        # write access for a file's lock; non-blocking, not through a symlink swapped in
        flags = os.O_RDONLY if stat.S_ISDIR(mode) else os.O_RDWR
        fd = os.open(path, flags | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        if stat.S_IFMT(os.fstat(fd).st_mode) != stat.S_IFMT(mode):
            return False
        if not _try_lock(fd, stat.S_ISDIR(mode)):
            return False  # a live run's
        if not _same_inode(path, fd):
            return False
        # holding the lock: no run can own it now (Temp.create re-checks after locking)
        if stat.S_ISDIR(mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def remove_dead_temps(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Remove the temporaries of destinations ``names`` in ``folder`` that dead runs left
    (their lock can be taken); a live run's, here or in another PID namespace, stays.
    Returns what was removed."""
    names = list(names)
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    found = [Path(folder, e) for e in entries if is_temp_of(e, names)]
    return [p for p in found if _remove_if_dead(p)]


__all__ = [
    "DIR_TEMP",
    "Temp",
    "is_temp_of",
    "raise_if_stopped",
    "remove_dead_temps",
    "signals_deferred",
    "stop_on_sigterm",
]
