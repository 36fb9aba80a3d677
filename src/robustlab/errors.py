"""The one error type users see: a single line that says what was wrong and how to fix it."""

import sys
from collections.abc import Callable
from contextlib import contextmanager


class RobustlabError(Exception):
    """Bad input or configuration; the CLI prints ``str(error)`` alone, without a traceback."""


def require(condition: bool, message: str) -> None:
    """Raise ``RobustlabError(message)`` unless ``condition`` holds."""
    if not condition:
        raise RobustlabError(message)


@contextmanager
def one_line_errors(speaks: Callable[[], bool] = lambda: True):
    """The boundary of every console command: bad input ends it with one ``error:`` line and exit 2.

    ``speaks`` is asked when the error arrives: the processes of a DDP run all meet the same error,
    and only one of them should print it.
    """
    try:
        yield
    except RobustlabError as error:
        if speaks():
            print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
