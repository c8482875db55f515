"""Helpers shared by the Typer apps in ``stages/``."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer

from ephys2expr.errors import InputError

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


def friendly_errors(func: F) -> F:
    """Turn :class:`InputError` (and unreadable files) into one line and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        setup_logging()
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from None
        except FileNotFoundError as exc:
            typer.echo(f"error: file not found: {exc.filename}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------
# The options every stage shares, defined once so that their names never differ.
# ---------------------------------------------------------------------------------------


def params_option():
    """``--params FILE``: the params file the stage's settings are read from."""
    return typer.Option(
        Path("params.yaml"), "--params", help="params file (its section for this stage is read)"
    )


def set_option(settings_cls) -> typer.models.OptionInfo:
    """``--set/-S KEY=VALUE`` (repeatable): override one setting, like ``dvc exp run -S``."""
    return typer.Option(
        [],
        "--set",
        "-S",
        help=f"KEY=VALUE override of params.yaml '{settings_cls.SECTION}' (repeatable). "
        f"Keys: {settings_cls.help_text()}",
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
