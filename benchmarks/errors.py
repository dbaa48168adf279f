"""The one exception type a user sees: a clear line and exit status 2."""


class UserError(Exception):
    """Bad input from the user (unknown name, malformed value, missing file).

    The CLI prints ``str(err)`` as one line on stderr and exits with status 2.
    Raise it before anything is written, so that no partial record is left.
    """

    exit_code = 2


def one_line(text: object) -> str:
    """Collapse a message to one line (records and CLI output keep one line per error)."""
    return " ".join(str(text).split())
