"""Helpers shared by the Typer apps in ``stages/``."""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import signal
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer

from ephys2expr.errors import InputError, one_line
from ephys2expr.temps import stop_on_sigterm

F = TypeVar("F", bound=Callable)

log = logging.getLogger("ephys2expr")


def setup_logging() -> None:
    """Log lines with a timestamp to stderr (DVC shows them while a stage runs)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
            datefmt="%H:%M:%S",
            stream=sys.stderr,
        )


# OS errors a user causes and can fix (a wrong path, a read-only or full disk, ...); any
# other OSError (a broken pipe, a lost Dask worker, ...) is a bug or an outage and keeps
# its traceback.
_USER_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENOENT",
        "EACCES",
        "EPERM",
        "EISDIR",
        "ENOTDIR",
        "EEXIST",
        "ENOTEMPTY",
        "ENOSPC",
        "EDQUOT",
        "EROFS",
        "EFBIG",
        "ENAMETOOLONG",
        "ELOOP",
        "EXDEV",
        "EBUSY",
        "ETXTBSY",
        "EMFILE",
        "ENFILE",
        "EIO",
    )
    if hasattr(errno, name)
)


def _data_errors() -> tuple[type[BaseException], ...]:
    """Exceptions of parsers fed a file that is not what its name says."""
    import json

    import pandas as pd
    import yaml

    found = [
        UnicodeDecodeError,
        json.JSONDecodeError,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        yaml.YAMLError,
        zipfile.BadZipFile,
    ]
    try:
        import pyarrow

        found.append(pyarrow.ArrowInvalid)
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        pass
    return tuple(found)


def os_error_line(exc: OSError) -> str:
    """``<path>: <reason>`` of an OS error (both paths of a failed rename)."""
    reason = exc.strerror or type(exc).__name__
    paths = [os.fspath(f) for f in (exc.filename, exc.filename2) if f is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else f"{reason} ({exc})"


def _failing_path(tb) -> str | None:
    """The file a parser was reading when it failed: the innermost frame-local path.

    Readers should raise :class:`InputError` naming their file; this names it for the
    parse errors that escape them (pandas calls it ``filepath_or_buffer``, pyarrow
    ``source``, our readers ``path``).
    """
    found = None
    while tb is not None:
        for name in ("path", "filepath_or_buffer", "source"):
            value = tb.tb_frame.f_locals.get(name)
            if isinstance(value, str | os.PathLike):
                found = os.fspath(value)
                break
        tb = tb.tb_next
    return found


def error_line(exc: BaseException) -> str | None:
    """The one line an expected error is reported with, or None for an unexpected one."""
    if isinstance(exc, InputError):
        return str(exc)
    if isinstance(exc, OSError) and (exc.errno in _USER_ERRNOS or exc.filename is not None):
        return one_line(os_error_line(exc))
    if isinstance(exc, _data_errors()):
        where = _failing_path(exc.__traceback__)
        detail = f"unreadable ({type(exc).__name__}: {exc})"
        return one_line(f"{where}: {detail}" if where else detail)
    return None


def friendly_errors(func: F) -> F:
    """Report expected errors as ``error: <one line naming the path>`` and exit code 2.

    Expected: :class:`InputError`, OS errors a user can fix (missing file, permission,
    a directory where a file should be, full or read-only disk, ...) and parse errors of
    a file that is not what it claims. Anything else keeps its traceback (exit 1): it is
    a bug to report, not a mistake to fix.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        setup_logging()
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            line = error_line(exc)
            if line is None:
                raise
        typer.echo(f"error: {line}", err=True)
        raise typer.Exit(code=2)

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------
# The options every stage shares, defined once so that their names never differ.
# ---------------------------------------------------------------------------------------


HELP_WIDTH = 100


def stage_app(doc: str | None) -> typer.Typer:
    """The Typer app of a stage: ``--help`` in plain two-column text, wrapped to the terminal
    up to :data:`HELP_WIDTH` columns (Typer's boxed rich layout squeezes every help text
    into a narrow column; tests/test_cli_help.py)."""
    return typer.Typer(
        add_completion=False,
        help=doc,
        rich_markup_mode=None,
        context_settings={"max_content_width": HELP_WIDTH},
    )


def params_option():
    """``--params FILE``: the params file the stage's settings are read from."""
    return typer.Option(
        Path("params.yaml"), "--params", help="params file (its section for this stage is read)"
    )


def set_option(settings_cls, *more_cls) -> typer.models.OptionInfo:
    """``--set/-S KEY=VALUE`` (repeatable): override one setting, like ``dvc exp run -S``.

    The help names the keys only (a long list of defaults and meanings is unreadable in a
    terminal); what each key means and its default are in ``params.yaml``, beside it.
    """
    section = settings_cls.SECTION
    keys = f"{section} keys: {', '.join(settings_cls.keys())}"
    for cls in more_cls:
        keys += f"; {cls.SECTION}.KEY: {', '.join(cls.keys())}"
    return typer.Option(
        [],
        "--set",
        "-S",
        metavar="KEY=VALUE",
        help=f"override a key of params.yaml '{section}' (repeatable; like dvc exp run -S). "
        f"{keys}. What each means and its default: params.yaml, or "
        f"{settings_cls.__module__.replace('.', '/')}.py.",
    )


def dir_option(name: str, default: Path, help: str):  # noqa: A002
    """A folder option with one of the shared names (``--prepared-dir``, ``--model-dir``,
    ``--out-dir``, ``--plots-dir``, ``--predictions-dir``, ``--raw-dir``)."""
    return typer.Option(default, f"--{name}", help=help)


def metrics_option(default: Path):
    """``--metrics FILE``: the stage's headline metrics JSON."""
    return typer.Option(default, "--metrics", help="headline metrics JSON (dvc metrics show)")


def report_option(default: Path):
    """``--report FILE``: the stage's detailed summary JSON (git-tracked, not a metric)."""
    return typer.Option(default, "--report", help="detailed summary JSON (beside the metrics)")


# ---------------------------------------------------------------------------------------
# Running a stage as a program: it dies with its parent (dvc) and unwinds on SIGTERM.
# ---------------------------------------------------------------------------------------


def run_stage(app) -> None:
    """Run a stage's Typer ``app`` as the main program (``python -m stages.<name>``).

    The stage dies with the process that started it: signalling only ``dvc repro`` would
    otherwise orphan the stage, which kept running and later overwrote newer outputs. On
    Linux the kernel sends SIGTERM when the parent exits (``PR_SET_PDEATHSIG``); when the
    parent is the ``sh -c`` that DVC runs the command in (a shell that does not ``exec``,
    as Debian's dash), the shell outlives dvc, so the stage also watches the shell's parent
    (:func:`watch_launcher`). SIGTERM raises ``SystemExit(143)``
    (:func:`~ephys2expr.temps.stop_on_sigterm`, installed here for every stage), so the
    atomic writers remove their temporary files and nothing half-written is left.
    ``--version`` prints :func:`version_line` and exits.
    """
    die_with_parent()
    watch_launcher()
    stop_on_sigterm()
    if "--version" in sys.argv[1:]:  # every stage; before Typer, which has no global option
        typer.echo(version_line())
        raise SystemExit(0)
    app()


def version_line() -> str:
    """``ephys2expr <version> (<git commit>)``: what ``--version`` prints (the commit when
    the package runs from a git checkout, as in the pipeline)."""
    import subprocess

    from ephys2expr import __version__

    root = Path(__file__).resolve().parent.parent
    try:
        git = ["git", "-C", str(root), "describe", "--always", "--dirty"]
        commit = subprocess.run(git, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"ephys2expr {__version__}" + (f" ({commit})" if commit else "")


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent exits.

    Returns False where that is not possible (not Linux). If the parent already exited
    before the request took effect, exits at once (status 128 + ``sig``).
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    if libc.prctl(pr_set_pdeathsig, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:  # the parent died before the request: do as it would
        raise SystemExit(128 + int(sig))
    return True


# Shells DVC runs a stage's command in (``$SHELL -c CMD``, else ``/bin/sh -c CMD``).
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "fish", "ksh", "mksh"})


def launcher(pid: int | None = None):
    """The process that launched this one: the parent, or the parent of a ``sh -c`` parent.

    Returns a :class:`psutil.Process`, or None when there is none to watch (the parent is
    PID 1 or gone).
    """
    import psutil  # dvc's own dependency; imported here so stages start fast

    try:
        parent = psutil.Process(pid or os.getpid()).parent()
        if parent is not None and parent.name() in SHELLS and "-c" in parent.cmdline()[1:]:
            parent = parent.parent()
    except psutil.Error:
        return None
    if parent is None or parent.pid <= 1:
        return None
    return parent


def watch_launcher(sig: int = signal.SIGTERM, every: float = 0.5) -> bool:
    """Send ``sig`` to this process once its :func:`launcher` exits (a daemon thread).

    Returns False when there is no launcher to watch.
    """
    import atexit
    import threading

    import psutil

    who = launcher()
    if who is None:
        return False

    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                # is_running() is also False for a reused PID (it compares create times)
                gone = not who.is_running() or who.status() == psutil.STATUS_ZOMBIE
            except psutil.Error:
                gone = True
            if gone:
                os.kill(os.getpid(), sig)
                return
            stop.wait(every)

    thread = threading.Thread(target=watch, name="watch-launcher", daemon=True)
    thread.start()
    # Stopped before the interpreter finalises: a daemon thread that wakes during
    # finalisation is ended by pthread_exit, whose forced unwind can abort the process
    # ("terminate called without an active exception", exit 134 instead of the stage's own).
    atexit.register(_stop_watching, stop, thread)
    return True


def _stop_watching(stop, thread) -> None:
    stop.set()
    thread.join()
