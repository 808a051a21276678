"""What every command shares when it speaks: failures as a message and an exit code, JSON
documents, the effective settings, and counts and shares in words."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer

from dealscore import documents
from dealscore.cli.progress import stop_progress
from dealscore.errors import DealscoreError
from dealscore.io.secrets import redact
from dealscore.schemas import ContractError
from dealscore.settings import as_toml


def count(n: int, noun: str) -> str:
    """'1 error', '1,204 errors'."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def signed_pct(value: float) -> str:
    """'+12%', '-3%', and '0%' for anything that rounds to nothing (never '-0%')."""
    return "0%" if round(value * 100) == 0 else f"{value:+.0%}"


def fail(message: str, code: int = 2) -> NoReturn:
    """Say what went wrong on stderr, in red, and exit with `code` (2: a usage error)."""
    typer.secho(redact(message), fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _contract_failure(exc: ContractError, what: str) -> NoReturn:
    """Print every broken rule, then exit 1: the export, not the command, is at fault."""
    typer.echo(redact(exc.report.to_text()))
    fail(f"{what}: the export breaks the data contract", code=1)


@contextmanager
def failures(what: str = "", json_command: str = "") -> Iterator[None]:
    """The one place a failure becomes a message and an exit code: a broken data contract prints
    every broken rule (exit 1); any other DealscoreError its message, with its exit code. With
    --json (json_command) the same in a JSON document on stdout, the line on stderr too.
    Anything else is a bug and keeps its traceback."""
    try:
        yield
    except ContractError as exc:
        stop_progress()
        said = what or "the export breaks the data contract"
        if json_command:
            message = f"{said}: the export breaks the data contract"
            echo_json(documents.failure(json_command, message, 1, exc.report.issues))
            fail(message, code=1)
        _contract_failure(exc, said)
    except DealscoreError as exc:
        stop_progress()
        if json_command:
            echo_json(documents.failure(json_command, redact(str(exc)), exc.exit_code))
        fail(str(exc), exc.exit_code)
    finally:
        stop_progress()


def echo_json(doc: dict[str, Any]) -> None:
    """One JSON document on stdout; NaN is refused, not written."""
    typer.echo(json.dumps(doc, indent=2, allow_nan=False))


def echo_config(values: object) -> NoReturn:
    """Print the effective settings as TOML (--print-config) and stop."""
    typer.echo(as_toml(values), nl=False)
    raise typer.Exit()
