"""The failures a user can act on. Each says what went wrong and why; the CLI prints the message
and exits with `exit_code`, once, for every command. Anything else is a bug and keeps its
traceback."""

from __future__ import annotations


class DealscoreError(Exception):
    """A failure the user can act on (exit 2: the command, its inputs or its environment)."""

    exit_code = 2


class InputError(DealscoreError, ValueError):
    """An option, setting or file the job cannot use."""


class DataError(DealscoreError, ValueError):
    """The data cannot do what was asked (too little history, nothing to group by)."""
