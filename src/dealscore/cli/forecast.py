"""The quarter's forecast commands: compare the model's forecast with the reps', and backtest it
on past quarters. Registered on the app in cli/__init__.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dealscore import documents
from dealscore.cli import render_forecast
from dealscore.cli.app import quiet_mlflow
from dealscore.cli.output import echo_json, fail, failures
from dealscore.cli.params import (
    ConfigOption,
    DataOption,
    JsonOption,
    MappingOption,
    PeriodsOption,
    ScoreModelOption,
    TrackingOption,
    option,
    optional_timestamp,
)
from dealscore.cli.progress import Progress
from dealscore.jobs.compare import run_backtest, run_compare
from dealscore.pipeline.periods import WEEKS, period_bounds
from dealscore.pipeline.training import TrainSettings
from dealscore.settings import load_settings

PeriodOption = Annotated[
    str | None,
    option(
        metavar="QUARTER",
        shown="the quarter of the export's own time",
        help="The quarter to forecast, e.g. 2026Q3.",
    ),
]
CompareAsOfOption = Annotated[
    str | None,
    option(
        "--as-of",
        metavar="DATE",
        shown="the export's own time; for a quarter already over, its start",
        help="Forecast as of this date (UTC).",
    ),
]
ByOption = Annotated[
    str | None,
    typer.Option(metavar="GROUP", help="Break down by team, owner or segment (industry)."),
]
MovedSinceOption = Annotated[
    str | None,
    option(
        "--since",
        metavar="DATE",
        shown="a week before --as-of",
        help="Show what moved in the quarter's pipeline from this date (UTC) to --as-of.",
    ),
]
WeeksOption = Annotated[
    str,
    typer.Option(
        metavar="LIST",
        help="The weeks into each quarter to forecast it at, comma-separated (0: its start).",
    ),
]
DEFAULT_WEEKS = ",".join(map(str, WEEKS))
BacktestOutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        metavar="FILE",
        help="Also write every forecast as CSV: period, week, as_of, forecast, amount, actual.",
    ),
]


def compare(
    data: DataOption,
    period: PeriodOption = None,
    as_of: CompareAsOfOption = None,
    by: ByOption = None,
    since: MovedSinceOption = None,
    model: ScoreModelOption = None,
    tracking_uri: TrackingOption = None,
    mapping: MappingOption = None,
    as_json: JsonOption = False,
) -> None:
    """A quarter's bookings forecast: the model's against the reps' and, once over, the actual.

    The quarter's number, whole, when --as-of lies in it: booked so far + every open deal's
    amount x P(won before the quarter ends) + what deals not yet created will bring (learned
    from past quarters at the same point), with a range, beside the reps' rollups (booked +
    commit, booked + commit + best case). Then, on the deals open at --as-of and due in the
    quarter, the model against the reps' commit, commit + best case and probability-weighted
    call; for a quarter already over the actual and each forecast's error. And what moved
    since --since: deals won, lost, pushed out, pulled in, new, and the deals whose
    probability moved most, with the factors that moved it.
    """
    quiet_mlflow()
    with failures(f"{data}: not compared", "compare" if as_json else ""):
        if period is not None:
            period_bounds(period)  # a bad quarter is refused before any data is read
        stamp = optional_timestamp(as_of, "--as-of")
        since_stamp = optional_timestamp(since, "--since")
        if stamp is not None and since_stamp is not None and since_stamp >= stamp:
            fail(f"--since ({since}) must be before --as-of ({as_of})")
        result = run_compare(
            data,
            period,
            stamp,
            by,
            model or "",
            tracking_uri or "",
            mapping,
            Progress(),
            since=since_stamp,
        )
    if as_json:
        echo_json(documents.compare_document(result))
        return
    render_forecast.echo_compare(result, by)


def weeks_into_quarter(text: str) -> tuple[int, ...]:
    """'0,4,8' -> (0, 4, 8); a week outside 0 to 13 or not a number is refused."""
    try:
        weeks = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        weeks = ()
    if not weeks or weeks[0] < 0 or weeks[-1] > 13:
        fail(f"--weeks must be whole weeks from 0 to 13, comma-separated, got {text!r}")
    return weeks


def backtest(
    data: DataOption,
    periods: PeriodsOption = 8,
    weeks: WeeksOption = DEFAULT_WEEKS,
    config: ConfigOption = None,
    mapping: MappingOption = None,
    out: BacktestOutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replay the last closed quarters through the quarter, with models that knew only the past.

    Each quarter is forecast whole (booked + the open deals + deals not yet created, with a
    range) every two weeks into it (weeks 0 to 12) by a model trained only on the history
    before the quarter, and set against its total bookings, beside the reps' rollups (booked +
    commit, booked + commit + best case). Prints each forecast's accuracy per week.
    """
    chosen = weeks_into_quarter(weeks)
    with failures(f"{data}: not backtested", "backtest" if as_json else ""):
        settings = load_settings(TrainSettings, config)
        result = run_backtest(data, periods, settings, mapping, Progress(), chosen, out)
    if as_json:
        echo_json(documents.backtest_document(result, out))
        return
    render_forecast.echo_backtest(result)
