"""Job: a quarter's forecast three ways (the model's, the reps', the actual once it is over),
and the backtest, which replays past quarters with models trained only on what was known then.
The forecasting itself is pipeline.periods."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dealscore.features.asof import export_time, last_event
from dealscore.io import read_valid
from dealscore.io.write import atomic_write
from dealscore.model.bundle import LoadedModel
from dealscore.model.totals import CollectiveError
from dealscore.pipeline.moves import Moves, deal_moves
from dealscore.pipeline.periods import (
    WEEKS,
    BacktestResult,
    backtest,
    groups_of,
    open_deals,
    period_bounds,
    summarise,
)
from dealscore.pipeline.quarter import (
    QuarterNumber,
    numbers_by_group,
    quarter_number,
    quarter_of,
)
from dealscore.pipeline.training import TrainSettings
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables, Opportunities
from dealscore.schemas.features import OPPORTUNITY_ID
from dealscore.tracking.models import load_model
from dealscore.tracking.registry import champion_uri


@dataclass(frozen=True)
class CompareResult:
    period: str
    as_of: pd.Timestamp
    # Over before the export ends: the model was trained on an export holding these outcomes,
    # so its error here is in-sample (`backtest` replays it honestly).
    closed: bool
    table: pd.DataFrame
    deals: pd.DataFrame
    model: LoadedModel
    coverage_warning: str = ""
    # The quarter's number, whole, when as_of lies in the period (pipeline/quarter.py), and
    # per group with --by.
    number: QuarterNumber | None = None
    numbers: pd.DataFrame | None = None
    moves: Moves | None = None  # what moved since an earlier date (pipeline/moves.py)


def default_as_of(tables: CrmTables, period: str | None) -> tuple[str, pd.Timestamp]:
    """(period, as_of) when not given: the export's own time (`export_time`, as in score and
    report), and the quarter it falls in; a period already over is forecast from its start."""
    now = export_time(last_event(tables))
    if period is None:
        period = str(quarter_of(now))
    start, end = period_bounds(period)
    return period, (start if end <= now else now)


def _numbers(
    tables: CrmTables,
    as_of: pd.Timestamp,
    every: pd.DataFrame,
    by: str | None,
    error: CollectiveError | None,
) -> tuple[QuarterNumber, pd.DataFrame | None]:
    """The quarter's number, whole, and with `by` each group's."""
    number = quarter_number(tables, as_of, every, error)
    if by is None:
        return number, None
    ids = tables.opportunities[Opportunities.opportunity_id]
    group_of = pd.Series(groups_of(tables, ids, by), index=ids.to_numpy())
    return number, numbers_by_group(tables, as_of, every, group_of, number, error)


def _moves(
    tables: CrmTables, loaded: LoadedModel, period: str, since: pd.Timestamp, as_of: pd.Timestamp
) -> Moves | None:
    """What moved in the quarter's pipeline from `since` to as_of, by the loaded model."""
    start, end = period_bounds(period)
    bundle = loaded.bundle
    names = bundle.feature_names
    return deal_moves(
        tables, bundle.estimator, bundle.feature_state, names, start, end, since, as_of
    )


def run_compare(
    data: str | Path,
    period: str | None,
    as_of: pd.Timestamp | None = None,
    by: str | None = None,
    model: str = "",
    tracking_uri: str = "",
    mapping: str | Path | None = None,
    progress: Progress = silent,
    since: pd.Timestamp | None = None,
) -> CompareResult:
    """The period's forecasts with the registered model (see `run_backtest` for past periods);
    model "": the champion of the export's own CRM; `since` (default: a week before as_of):
    what moved in the quarter's pipeline from then to as_of."""
    loaded = load_model(model or champion_uri(data), tracking_uri)
    tables = read_valid(data, mapping, progress)
    mismatch = loaded.mismatch(tables.coverage())
    period, default = default_as_of(tables, period)
    as_of = default if as_of is None else as_of
    start, end = period_bounds(period)
    progress(f"{period} forecast as of {as_of:%Y-%m-%d %H:%M} UTC with {loaded.describe()}")
    every = open_deals(
        tables,
        loaded.bundle.estimator,
        loaded.bundle.feature_state,
        loaded.bundle.feature_names,
        period,
        as_of,
        loaded.bundle.in_quarter,
    )
    number, numbers = (
        _numbers(tables, as_of, every, by, loaded.bundle.in_quarter_error)
        if start <= as_of
        else (None, None)
    )
    deals = every[every["due"]].drop(columns="due").reset_index(drop=True)
    closed = bool(last_event(tables) >= end)
    since = as_of - pd.Timedelta(days=7) if since is None else since
    moves = _moves(tables, loaded, period, since, as_of) if since < as_of else None
    return CompareResult(
        period,
        as_of,
        closed,
        summarise(deals, groups_of(tables, deals[OPPORTUNITY_ID], by), closed),
        deals,
        loaded,
        coverage_warning=mismatch,
        number=number,
        numbers=numbers,
        moves=moves,
    )


def run_backtest(
    data: str | Path,
    periods: int = 8,
    settings: TrainSettings | None = None,
    mapping: str | Path | None = None,
    progress: Progress = silent,
    weeks: tuple[int, ...] = WEEKS,
    out: Path | None = None,
) -> BacktestResult:
    """Read and validate the export, `backtest` it, and write its forecasts to `out` (CSV: one
    row per quarter, week and forecast, with the quarter's actual bookings) when given."""
    result = backtest(read_valid(data, mapping, progress), periods, settings, progress, weeks)
    if out is not None:
        frame = result.forecasts.assign(as_of=result.forecasts["as_of"].dt.strftime("%Y-%m-%d"))
        atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False))
        progress(f"forecasts written to {out}")
    return result
