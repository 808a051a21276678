"""The text of the quarter's forecasts: compare's number, moves and forecast table, and
backtest's quarters and accuracy per week."""

from __future__ import annotations

import numpy as np
import pandas as pd
import typer

from dealscore.cli.output import signed_pct
from dealscore.jobs.compare import CompareResult
from dealscore.pipeline.moves import Moves
from dealscore.pipeline.periods import BacktestResult
from dealscore.pipeline.quarter import RANGE_WORDS, QuarterNumber


def forecast_table(table: pd.DataFrame) -> str:
    """Amounts with thousands separators; each forecast's error as a signed share of the actual
    (above 0: it over-forecast)."""
    keep = [c for c in table if not c.endswith("_error") or c.endswith("_pct_error")]
    shown = table[[c for c in keep if not c.endswith("_abs_pct_error")]]
    shown = shown.rename(columns={c: c.replace("_pct_error", " err") for c in shown})
    money = {c: "{:,.0f}".format for c in shown if c in ("actual", "model") or c.startswith("rep_")}
    pct = {c: signed_pct for c in shown if c.endswith(" err")}
    return shown.to_string(index=False, formatters={**money, **pct}, na_rep="-")


def number_lines(number: QuarterNumber) -> list[str]:
    """The quarter's number with its parts and range, then the reps' rollups beside it."""
    lines = [
        f"the quarter's number (model): {number.model:,.0f} = booked {number.booked:,.0f} "
        f"+ the {number.open_deals:,} open deals {number.open:,.0f} "
        f"+ deals not yet created {number.new:,.0f}; "
        f"{RANGE_WORDS} {number.low:,.0f} to {number.high:,.0f}",
        *number.notes,
    ]
    if not np.isnan(number.rep_commit):
        lines.append(
            f"the reps' rollups: booked + commit {number.rep_commit:,.0f}, "
            f"booked + commit + best case {number.rep_commit_best_case:,.0f}"
        )
    return lines


def moves_lines(moves: Moves) -> list[str]:
    """The pipeline's moves since the earlier date, and the deals whose probability moved most."""
    lines = [
        f"what moved since {moves.since:%Y-%m-%d %H:%M} UTC: the pipeline due in the quarter "
        f"went from {moves.start:,.0f} to {moves.end:,.0f}"
    ]
    flow = moves.flow.to_string(index=False, formatters={"amount": "{:+,.0f}".format})
    lines += ["  " + line for line in flow.splitlines()]
    top = moves.top()
    if not top.empty:
        lines.append(f"the {len(top)} deals whose probability moved most (by amount at stake):")
        for _, row in top.iterrows():
            lines.append(
                f"  {row['deal']} ({row['owner'] or 'no owner'}, {row['amount']:,.0f}): "
                f"{row['p_then']:.0%} -> {row['p_now']:.0%}: {row['change_reason']}"
            )
    return lines


def echo_compare(result: CompareResult, by: str | None) -> None:
    """The quarter's number, what moved, and the forecasts on the deals due in the quarter."""
    state = "closed: actual known" if result.closed else "still open: no actual yet"
    typer.echo(
        f"{result.period} as of {result.as_of:%Y-%m-%d %H:%M} UTC, {state}; "
        f"{result.model.describe()}"
    )
    if result.coverage_warning:
        typer.secho(f"WARNING: {result.coverage_warning}", fg=typer.colors.YELLOW)
    if result.number is not None:
        for line in number_lines(result.number):
            typer.echo(line)
    if result.numbers is not None:
        typer.echo(f"by {by}:")
        typer.echo(
            result.numbers.rename(
                columns={"group": by or "group", "new": "not yet created"}
            ).to_string(index=False, float_format="{:,.0f}".format, na_rep="-")
        )
    if result.moves is not None:
        for line in moves_lines(result.moves):
            typer.echo(line)
    typer.echo("on the deals due in the quarter only:")
    if result.deals.empty:
        typer.echo(
            "no deal open then has an expected close date in the period "
            "(the forecast needs stage history with close dates)"
        )
        return
    typer.echo(forecast_table(result.table.rename(columns={"group": by or "group"})))
    if result.closed:  # the model saw these outcomes in training
        typer.secho(
            "in-sample: this model was trained on this export, outcomes of this quarter "
            "included, so its error here flatters it; `dealscore backtest` replays the quarter "
            "with a model trained only on the history before it",
            fg=typer.colors.YELLOW,
        )


def accuracy_table(accuracy: pd.DataFrame) -> str:
    """Per week and forecast: accuracy ratio, absolute error, bias and its standard error, and
    the counts."""
    shown = accuracy.rename(
        columns={
            "accuracy_ratio": "forecast/actual",
            "abs_pct_error": "abs err",
            "bias_se": "bias se",
            "in_green": "in 85-115%",
            "in_range": "actual in range",
            "model_closer": "model closer",
        }
    )
    counts = [c for c in ("actual in range", "model closer") if c in shown]
    formats = {
        "forecast/actual": "{:.0%}".format,
        "abs err": "{:.1%}".format,
        "bias": signed_pct,
        "bias se": lambda v: "-" if pd.isna(v) else f"{v:.1%}",
        **{c: (lambda v: "-" if pd.isna(v) else f"{v:.0f}") for c in counts},
    }
    return shown.to_string(index=False, formatters=formats, na_rep="-")


def echo_backtest(result: BacktestResult) -> None:
    """The quarters skipped, each quarter at its first week, and the accuracy per week."""
    for period, why in result.skipped.items():
        typer.echo(f"{period}: skipped: {why}")
    wide = result.wide()
    first = wide[wide["week"] == wide["week"].min()]
    columns = ["period", "actual", "model", "model_low", "model_high", "booked", "model_open"]
    columns += ["model_new", *[c for c in ("rep_commit", "rep_commit_best_case") if c in first]]
    typer.echo(f"each quarter at week {int(first['week'].iloc[0])}:")
    typer.echo(
        first[columns]
        .rename(
            columns={
                "model_low": "low",
                "model_high": "high",
                "model_open": "open",
                "model_new": "not yet created",
            }
        )
        .to_string(index=False, float_format="{:,.0f}".format, na_rep="-")
    )
    quarters = wide["period"].nunique()
    typer.echo(f"accuracy per week over {quarters} quarter{'' if quarters == 1 else 's'}:")
    typer.echo(accuracy_table(result.accuracy()))
