"""Shared assertions of the suite: every bad input is ONE line, naming what is wrong."""

from __future__ import annotations

import pytest

from ephys2expr.errors import InputError


def raises_one_line(match: str, fn, *args, **kwargs) -> str:
    """Call ``fn``; assert it raises :class:`InputError` matching ``match`` in one line."""
    with pytest.raises(InputError, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def assert_one_line_exit_2(result, *expected: str) -> str:
    """A CLI run (typer's ``CliRunner`` result) that ended with one line and exit code 2,
    its output holding every text of ``expected``."""
    output = result.output.strip()
    assert result.exit_code == 2, result.output
    assert len(output.splitlines()) == 1, result.output
    for text in expected:
        assert text in output, result.output
    return output
