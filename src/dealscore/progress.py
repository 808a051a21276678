"""Progress reporting for long work: a callback taking one message; the CLI prints it."""

from __future__ import annotations

import time
from collections.abc import Callable

Progress = Callable[[str], None]


def silent(message: str) -> None:
    """The default: say nothing."""


class Laps:
    """Seconds per stage of a job: call it with a stage's name when the stage ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = now - self._last
        self._last = now
