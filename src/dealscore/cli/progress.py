"""Progress on stderr while a job runs, so stdout stays clean for the summary: live bars at an
interactive terminal, timed lines otherwise."""

from __future__ import annotations

import sys

from dealscore.io.secrets import redact
from dealscore.terminal import WARNING, LiveBars, TimedLines

# Progress displays still running: `failures` stops them when the job is done, before the
# command prints its summary.
_SHOWING: list[LiveBars | TimedLines] = []
_LIVE = {"allowed": True}  # --no-progress turns the bars off


def allow_live(allowed: bool) -> None:
    """Whether live bars may be shown at a terminal (--no-progress: never)."""
    _LIVE["allowed"] = allowed


class Progress:
    """Progress on stderr, so stdout stays clean for the summary: live bars at an interactive
    terminal, timed lines otherwise; the warnings said along the way are kept for --json."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.show = LiveBars() if _LIVE["allowed"] and sys.stderr.isatty() else TimedLines()
        _SHOWING.append(self.show)

    def __call__(self, message: str) -> None:
        """Show a job's message, passwords redacted; keep a warning for --json."""
        message = redact(message)
        if message.startswith(WARNING):
            self.warnings.append(message.removeprefix(WARNING))
        self.show(message)


def stop_progress() -> None:
    """Close every display still running."""
    while _SHOWING:
        _SHOWING.pop().close()
