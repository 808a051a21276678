"""The `dealscore` executable: `--version` answers before the CLI and its data stack import."""

from __future__ import annotations

import sys

from dealscore import __version__


def main() -> None:
    """Run the CLI; `dealscore --version` alone costs only this module's import."""
    if sys.argv[1:] == ["--version"]:
        print(f"dealscore {__version__}")
        return
    from dealscore.cli import app

    app(prog_name="dealscore")
