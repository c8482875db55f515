"""The one exception type that means "the input is wrong, tell the user"."""


class InputError(Exception):
    """Bad input: the message is one line naming the file, column or value.

    Stages turn it into ``error: <message>`` on stderr and exit code 2
    (see :func:`ephys2expr.cli.friendly_errors`).
    """
