"""How long work shows while it runs: at an interactive terminal, one live line per step with a
bar where the step says how far along it is ("120,000 of 1,000,000 deals"); for logs (not a
terminal, or `--no-progress`) the timestamped lines.

The jobs only ever call `progress(message)` (dealscore.progress); this is the CLI's side.
"""

from __future__ import annotations

import re
import time

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column

# "120,000 of 1,000,000", "round 40 of at most 2,000": how far a step is along.
COUNT = re.compile(r"([\d,]+) of (?:at most )?([\d,]+)")
WARNING = "WARNING: "


class TimedLines:
    """`[   12.3s] message` on stderr: what a log or a scheduler keeps."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        typer.echo(f"[{time.perf_counter() - self.started:7.1f}s] {message}", err=True)

    def close(self) -> None:
        """Nothing to stop."""


class LiveBars:
    """A rich progress display on stderr: each step a line with a spinner and its time, and a bar
    while its messages count; a step ends when a message of another step arrives."""

    def __init__(self, console: Console | None = None) -> None:
        self.display = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            # the message takes what the other columns leave, cut with an ellipsis
            TextColumn(
                "{task.description}",
                markup=False,
                table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis"),
            ),
            BarColumn(bar_width=24),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            redirect_stdout=False,
            redirect_stderr=False,
            expand=True,
        )
        self.task: TaskID | None = None
        self.step = ""
        self.running = False

    def __call__(self, message: str) -> None:
        if not self.running:
            self.display.start()
            self.running = True
        if message.startswith(WARNING):
            self.display.console.print(f"[yellow]{message}[/]", markup=False, highlight=False)
            return
        found = COUNT.search(message)
        # The step: the text before its count ("win model: round"), or the whole message.
        step = message[: found.start()] if found else message
        done, total = (
            (int(found[1].replace(",", "")), int(found[2].replace(",", ""))) if found else (0, None)
        )
        if self.task is not None and found and step == self.step:
            self.display.update(self.task, description=message, completed=done, total=total)
            return
        self._finish()
        self.step = step
        self.task = self.display.add_task(message, total=total, completed=done)

    def _finish(self) -> None:
        if self.task is not None:
            task = self.display.tasks[-1]
            self.display.update(self.task, total=task.total or 1, completed=task.total or 1)

    def close(self) -> None:
        """End the last step and stop the display (before the command prints its summary)."""
        if self.running:
            self._finish()
            self.display.stop()
            self.running = False
