"""The report command: one HTML page for the weekly forecast call. Registered on the app in
cli/__init__.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dealscore.cli.app import quiet_mlflow
from dealscore.cli.output import count, failures
from dealscore.cli.params import (
    ConfigOption,
    DataOption,
    MappingOption,
    PeriodsOption,
    ScoreModelOption,
    ScoresOption,
    TrackingOption,
    option,
)
from dealscore.cli.progress import Progress
from dealscore.jobs.report import run_report
from dealscore.pipeline.training import TrainSettings
from dealscore.settings import load_settings

ReportOutOption = Annotated[
    Path, typer.Option("--out", "-o", metavar="FILE", help="Where to write the HTML page.")
]
CurrencyOption = Annotated[
    str,
    option(
        metavar="CODE",
        shown="none: the export's own",
        help="The currency the export's amounts are in, shown beside them (USD, EUR).",
    ),
]
CacheOption = Annotated[
    bool,
    typer.Option(
        "--cache/--no-cache",
        metavar="",
        help="Reuse the past quarters' replay of the same export and settings "
        "(DEALSCORE_CACHE, else ~/.cache/dealscore).",
    ),
]


def report(
    data: DataOption,
    out: ReportOutOption = Path("report.html"),
    periods: PeriodsOption = 4,
    config: ConfigOption = None,
    model: ScoreModelOption = None,
    tracking_uri: TrackingOption = None,
    mapping: MappingOption = None,
    currency: CurrencyOption = "",
    scores: ScoresOption = None,
    cache: CacheOption = True,
) -> None:
    """Write one HTML page for the weekly forecast call, viewable offline.

    This quarter so far (booked, the model's and the reps' call), past quarters replayed with
    models trained only on the history before each, the deals to act on with their reasons,
    the open pipeline by band, how far the probabilities can be trusted, deals with no next
    step booked, and deals drifting into no decision.
    """
    quiet_mlflow()
    with failures(f"{data}: no report"):
        settings = load_settings(TrainSettings, config)
        result = run_report(
            data,
            out,
            periods,
            model=model or "",
            tracking_uri=tracking_uri or "",
            mapping=mapping,
            settings=settings,
            progress=Progress(),
            currency=currency,
            use_cache=cache,
            scores_at=scores or "",
        )
    typer.echo(f"report with {count(result.charts, 'chart')} written to {result.path}")
