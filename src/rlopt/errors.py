"""Errors every command reports the same way (one line, exit status 2)."""


class UsageError(Exception):
    """Bad user input; reported as one line, exit status 2."""
