"""The options more than one command takes, each declared once as an `Annotated` alias, and the
readers that turn an option's text into a value or a usage error. An option only one command
takes is declared beside that command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from dealscore.cli.output import fail
from dealscore.io.write import TableFormat
from dealscore.schemas.tables import utc


def option(*names: str, shown: str, **options: Any) -> Any:
    """`typer.Option` whose default is said in words ("the export's own time"), printed
    `[default: ...]` like any other default rather than in Click's parentheses."""
    said = options.pop("help", "")
    return typer.Option(*names, help=f"{said}  [default: {shown}]", show_default=False, **options)


DataOption = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        metavar="FOLDER|URL",
        help="The export: a folder of tables or a SQLAlchemy URL.",
    ),
]
MappingOption = Annotated[
    str | None,
    typer.Option(
        "--mapping",
        "-m",
        metavar="PRESET|FILE",
        help="A raw export's column mapping: a preset (salesforce) or a YAML file "
        "(docs/mappings.md).",
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE", help="Settings file (TOML); options given on the command line override it."
    ),
]
PrintConfigOption = Annotated[
    bool,
    typer.Option(
        "--print-config",
        metavar="",
        help="Print the effective settings (file, then options, over the defaults) as TOML "
        "and exit.",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document on stdout instead of the text summary (docs/json.md).",
    ),
]
# The tables generate and ingest write.
FormatOption = Annotated[
    str,
    typer.Option(
        "--format", metavar="FORMAT", help="File format of the written tables: parquet or csv."
    ),
]
# The files of a folder of scores, read by monitor and written by nightly.
StoreFormatOption = Annotated[
    str | None,
    typer.Option("--format", metavar="FORMAT", help="A folder store's files: parquet or csv."),
]
TrackingOption = Annotated[
    str | None,
    option(
        metavar="URI",
        shown="MLFLOW_TRACKING_URI, else ./mlflow.db",
        help="MLflow tracking URI.",
    ),
]
MODEL_HELP = "Model URI (models:/NAME@ALIAS, runs:/RUN_ID/model) or folder; loading runs its code."
ScoreModelOption = Annotated[
    str | None,
    option(
        metavar="URI",
        shown="models:/dealscore-<the export's name>@champion",
        help=MODEL_HELP,
    ),
]
ScoreOutOption = Annotated[
    str | None,
    option(
        "--out",
        "-o",
        metavar="URL|FOLDER",
        shown="sqlite:///scores.db",
        help="Where scores go: a SQLAlchemy or JDBC URL, or a folder (docs/scoring.md).",
    ),
]
ScoreAsOfOption = Annotated[
    str | None,
    option(
        "--as-of",
        metavar="DATE",
        shown="the export's own time",
        help="Score the deals open at this time (UTC); a past date sees the data as it stood.",
    ),
]
ScoresOption = Annotated[
    str | None,
    option(
        "--scores",
        metavar="URL|FOLDER",
        shown="sqlite:///scores.db",
        help="Where `score` wrote its scores: a database URL or a folder.",
    ),
]
PeriodsOption = Annotated[
    int, typer.Option(min=1, metavar="N", help="How many of the last closed quarters to replay.")
]


def timestamp(text: str, name: str) -> pd.Timestamp:
    """An option's date or time in UTC (a naive one is taken as UTC), or a usage error."""
    try:
        return utc(text)
    except ValueError:
        fail(f"{name}: cannot read {text!r} as a date or time (use YYYY-MM-DD or ISO 8601, UTC)")


def optional_timestamp(text: str | None, name: str) -> pd.Timestamp | None:
    """As `timestamp`; an option not given (or given as '') is None."""
    return timestamp(text, name) if text else None


def table_format(fmt: str) -> TableFormat:
    """--format of written tables: parquet or csv, anything else a usage error."""
    if fmt not in ("parquet", "csv"):
        fail(f"--format must be parquet or csv, got {fmt!r}")
    return fmt  # type: ignore[return-value]
