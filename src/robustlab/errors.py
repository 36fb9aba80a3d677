"""The one error type users see: a single line that says what was wrong and how to fix it."""


class RobustlabError(Exception):
    """Bad input or configuration; the CLI prints ``str(error)`` alone, without a traceback."""


def require(condition: bool, message: str) -> None:
    """Raise ``RobustlabError(message)`` unless ``condition`` holds."""
    if not condition:
        raise RobustlabError(message)
