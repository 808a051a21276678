"""Progress at an interactive terminal: a line per step, a bar while the step counts."""

from __future__ import annotations

import io

from rich.console import Console
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.io import write_tables
from dealscore.terminal import LiveBars


def test_steps_become_lines_and_counted_steps_bars():
    # given a terminal
    screen = io.StringIO()
    bars = LiveBars(Console(file=screen, force_terminal=True, width=100))
    # when a job says what it does, counting where it can, and warns once
    bars("reading crm/")
    bars("scored and explained 50,000 of 200,000 deals (25%)")
    counted = bars.display.tasks[-1]
    assert (counted.completed, counted.total) == (50_000, 200_000)
    bars("scored and explained 200,000 of 200,000 deals (100%)")
    bars("WARNING: 3 inputs drifted")
    bars("writing 200,000 scores")
    bars.close()
    # then each step is one line, the counted one a single bar that moved, all finished
    tasks = bars.display.tasks
    assert [t.description for t in tasks] == [
        "reading crm/",
        "scored and explained 200,000 of 200,000 deals (100%)",
        "writing 200,000 scores",
    ]
    assert all(t.finished for t in tasks) and tasks[1].total == 200_000
    # and the warning is printed above the bars, as said
    shown = screen.getvalue()
    assert "WARNING: 3 inputs drifted" in shown and "✓" in shown


def test_logs_get_timed_lines(tables, tmp_path):
    # given an export, when a command runs with --no-progress (or its output is not a terminal)
    write_tables(tables, tmp_path)
    result = CliRunner().invoke(app, ["--no-progress", "validate", str(tmp_path)])
    # then progress is timestamped lines on stderr, the report on stdout
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("[") and "s] reading" in result.stderr
    assert "valid" in result.stdout
