"""Progress reporting for long work: a callback taking one message; the CLI prints it."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def silent(message: str) -> None:
    """The default: say nothing."""
