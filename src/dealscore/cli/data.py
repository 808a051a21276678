"""The data commands: generate a synthetic CRM, validate and ingest an export, list and build
features. Registered on the app in cli/__init__.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from dealscore import documents
from dealscore.cli import render
from dealscore.cli.output import count, echo_config, echo_json, failures
from dealscore.cli.params import (
    ConfigOption,
    DataOption,
    FormatOption,
    JsonOption,
    MappingOption,
    PrintConfigOption,
    option,
    optional_timestamp,
    table_format,
)
from dealscore.cli.progress import Progress
from dealscore.io.icp import BUILTIN_ICP
from dealscore.jobs.features import run_build_features
from dealscore.jobs.generate import run_generate
from dealscore.jobs.ingest import run_ingest, run_validate
from dealscore.settings import load_settings
from dealscore.synthetic import DEFAULT_EXPORT_DATE, GeneratorSettings

GenerateOutOption = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        metavar="FOLDER",
        help="Folder to write the tables (and the truth files) into.",
    ),
]
DealsOption = Annotated[int | None, option(metavar="N", shown="20000", help="Number of deals.")]
GenerateSeedOption = Annotated[
    int | None,
    option(metavar="N", shown="0", help="Random seed: the same seed gives the same CRM."),
]
ExportDateOption = Annotated[
    str | None,
    option(
        metavar="DATE",
        shown=DEFAULT_EXPORT_DATE,
        help="The export's 'now' (YYYY-MM-DD, UTC): open deals are open as of this date. The "
        "default is the documented demo's, so its figures reproduce.",
    ),
]
YearsOption = Annotated[
    float | None,
    option(metavar="YEARS", shown="3", help="Years of history before the export date."),
]
ValidatePathArgument = Annotated[
    str,
    typer.Argument(
        metavar="FOLDER|URL",
        help="A folder of CSV/Parquet tables, or a SQLAlchemy database URL.",
        show_default=False,
    ),
]
RawExportArgument = Annotated[
    str,
    typer.Argument(
        metavar="FOLDER|URL",
        help="The raw export: a folder of CSV/Parquet files, or a SQLAlchemy URL.",
        show_default=False,
    ),
]
IngestOutOption = Annotated[
    Path,
    typer.Option("--out", "-o", metavar="FOLDER", help="Folder to write the contract tables into."),
]
FeaturesOutOption = Annotated[
    Path,
    typer.Option("--out", "-o", metavar="FILE", help="Parquet file to write the feature frame to."),
]
FeaturesAsOfOption = Annotated[
    str | None,
    option(
        metavar="DATE",
        shown="the export's own time",
        help="Features as of this time (UTC); every deal open then gets a row.",
    ),
]
IcpOption = Annotated[
    str,
    typer.Option(
        metavar="FILE",
        help="The documented ICP (YAML); builtin: the one shipped with dealscore; '': none.",
    ),
]


def generate(
    out: GenerateOutOption,
    deals: DealsOption = None,
    seed: GenerateSeedOption = None,
    export_date: ExportDateOption = None,
    years: YearsOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = "parquet",
    print_config: PrintConfigOption = False,
) -> None:
    """Generate a synthetic CRM export: all seven tables plus the truth files.

    Every deal runs forward in time from a hidden health; the truth files hold its path, its win
    probability at creation and how open deals end. Training reads them only to report the
    ceiling no model can beat; scoring never does.
    """
    written_as = table_format(fmt)
    stamp = optional_timestamp(export_date, "--export-date")
    with failures():
        settings = load_settings(
            GeneratorSettings, config, deals=deals, seed=seed, export_date=stamp, years=years
        )
    if settings.export_date is None:  # neither the option nor the file set it
        settings = replace(settings, export_date=pd.Timestamp(DEFAULT_EXPORT_DATE, tz="UTC"))
    if print_config:
        echo_config(settings)
    with failures():
        result = run_generate(settings, out, written_as, progress=Progress())
    typer.echo(result.summary.to_text())
    typer.echo(
        f"wrote {len(result.files)} tables to {result.out} and the truth files "
        f"({', '.join(p.name for p in result.truth)}) in {result.seconds:.1f}s"
    )


def validate(
    path: ValidatePathArgument,
    mapping: MappingOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check an export against the data contract and summarise it.

    Reports every broken rule by table, column, rule, failing-row count and examples. Exits 1
    when there are errors; warnings (an open deal with no account, say) do not fail.
    """
    # a file that is no table (a ragged CSV row, say) fails the read itself
    with failures(f"{path}: INVALID", "validate" if as_json else ""):
        result = run_validate(path, mapping, progress=Progress())
    if as_json:
        echo_json(documents.validate_document(result))
        raise typer.Exit(0 if result.report.ok else 1)
    render.echo_validation(result)
    if not result.report.ok:
        typer.secho(
            f"{result.source}: INVALID ({count(len(result.report.errors), 'error')})",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    typer.secho(f"{result.source}: valid", fg=typer.colors.GREEN)


def ingest(
    src: RawExportArgument,
    out: IngestOutOption,
    mapping: MappingOption = None,
    fmt: FormatOption = "parquet",
) -> None:
    """Translate a raw export into the contract tables, validate them, and write them.

    Nothing is written when validation finds errors.
    """
    written_as = table_format(fmt)
    with failures(f"{src}: not written"):
        result = run_ingest(src, out, mapping, written_as, progress=Progress())
    render.echo_validation(result.validation, whole_report=False)
    typer.echo(f"wrote {len(result.files)} tables to {out}")


def features_list() -> None:
    """The feature catalogue: name, family, source tables and meaning of every feature."""
    for line in render.catalogue_lines():
        typer.echo(line)


def features_build(
    data: DataOption,
    out: FeaturesOutOption,
    as_of: FeaturesAsOfOption = None,
    mapping: MappingOption = None,
    icp: IcpOption = BUILTIN_ICP,
) -> None:
    """Build features for every deal open at --as-of, using only rows dated before it."""
    stamp = optional_timestamp(as_of, "--as-of")
    with failures(f"{data}: no features built"):
        result = run_build_features(data, stamp, out, mapping, icp, progress=Progress())
    render.echo_features(result, out)
