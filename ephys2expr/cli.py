"""Helpers shared by the Typer apps in ``stages/``."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
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
