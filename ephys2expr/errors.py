"""The one exception type that means "the input is wrong, tell the user"."""


class InputError(Exception):
    """Bad input: the message is one line naming the file, column or value.

    Stages turn it into ``error: <message>`` on stderr and exit code 2
    (see :func:`ephys2expr.cli.friendly_errors`). A message that quotes a multi-line text
    (a parser's error, say) is folded into one line by :func:`one_line`.
    """

    def __str__(self) -> str:
        return one_line(super().__str__())


def one_line(text: object) -> str:
    """``text`` with its lines joined by ``" | "``: error messages must stay one line."""
    return " | ".join(part.strip() for part in str(text).splitlines() if part.strip())


class WriteError(InputError):
    """Writing an output failed (disk full, quota, read-only file system ...): one line
    naming the destination ``path`` (never a temporary file) and the reason."""

    def __init__(self, path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: writing failed ({reason})")
