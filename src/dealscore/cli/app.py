"""The one Typer app every command registers on: its root options (--version, --no-progress)
and what the libraries underneath may print."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Annotated, Any

import mlflow  # noqa: F401  - imported first: it sets its loggers up on import
import typer

from dealscore import __version__
from dealscore.cli.progress import allow_live

app = typer.Typer(
    help="Calibrated win probabilities for B2B deals, learned from your CRM history.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"max_content_width": 120},  # Click's own cap is 80 columns
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
FEATURES_HELP = "Point-in-time features: list the catalogue, build a feature frame."
features_app = typer.Typer(help=FEATURES_HELP, no_args_is_help=True, rich_markup_mode=None)
app.add_typer(features_app, name="features", short_help=FEATURES_HELP)


def _version(value: bool) -> None:
    """Answer --version and stop."""
    if value:
        typer.echo(f"dealscore {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            metavar="",
            help="Show the version and exit.",
        ),
    ] = False,
    no_progress: Annotated[
        bool,
        typer.Option(
            "--no-progress",
            envvar="DEALSCORE_NO_PROGRESS",
            help="Timed progress lines instead of live bars, even at a terminal.",
        ),
    ] = False,
) -> None:
    """Calibrated win probabilities for B2B deals, learned from your CRM history."""
    _library_warnings_to_log()
    allow_live(not no_progress)


def _library_warnings_to_log() -> None:
    """Python warnings from the libraries underneath (pandas deprecations, NumPy's RuntimeWarning,
    MLflow's notices) go to the `py.warnings` log, not the terminal: what matters to the user
    is said by the jobs in their own words. `python -W ...` or PYTHONWARNINGS shows them."""
    if not sys.warnoptions:
        logging.captureWarnings(True)
        logging.getLogger("py.warnings").propagate = False


def quiet_mlflow() -> None:
    """MLflow's INFO lines (store migrations, "Created version") would bury the job's own
    output. It sets its loggers up when imported, so import it first, then quiet them."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def register(group: typer.Typer, command: Callable[..., Any], name: str | None = None) -> None:
    """Add a command to a group, listed with its docstring's first line whole (Click would
    cut it at 45 characters with "...")."""
    first_line = (command.__doc__ or "").strip().splitlines()[0]
    group.command(name, short_help=first_line)(command)
