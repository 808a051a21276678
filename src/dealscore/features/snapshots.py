"""Training snapshots: the nightly scorer's own population.

On a calendar grid (every N days, anchored on the cut-off), every deal open at each grid date,
labelled "won within H days of the snapshot", and used only where that window ended before the
cut-off. Nothing about a row is chosen by its future: which deals are open at a date, and
whether their window has ended, are known at the window's end. A deal still open when its window
ends is "not won within H".

The grid starts where the export's history does: the first date by which it records both a won
and a lost (or no-decision) deal. Before it one outcome is missing (a funnel whose first sale
came months after its first lead, a CRM that began recording wins late), so those dates would
teach that nothing is ever won. The horizon H, unless set, is the 90th percentile of won deals'
cycles, at most a fifth of that history (a short history cannot label a long window: wins that
come in days get a horizon of weeks) and within 30..365 days.

`recent_snapshots` are the grid dates of the last horizon, whose windows have not ended: what
they say so far (won already, or not yet) is what a changing business looks like before the
labelled rows can show it (model/recent.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dealscore.features.pit import DAY, micros, quarter_end_micros
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID, SnapshotFrame
from dealscore.schemas.tables import Opportunities, Status

OPEN = Status.OPEN.value
HORIZON_QUANTILE = 0.9  # auto horizon: this quantile of won deals' cycles...
HORIZON_BOUNDS = (30.0, 365.0)  # ...kept within these days...
HORIZON_SHARE = 0.2  # ...and at most this share of the history since history_start


@dataclass(frozen=True)
class SnapshotSettings:
    """How training snapshots are drawn (docs/features.md explains the choice)."""

    every_days: float = 7.0  # days between grid dates
    horizon_days: float = 0.0  # label = won within this many days; 0 = auto
    age_weight_days: float = 90.0  # rows of deals older than this weigh age_weight_days / age
    seed: int = 0

    def __post_init__(self) -> None:
        if self.every_days <= 0:
            raise ValueError("every_days must be > 0")
        if self.horizon_days < 0 or self.age_weight_days <= 0:
            raise ValueError("horizon_days must be >= 0 (0 = auto) and age_weight_days > 0")


def history_start(opportunities: pd.DataFrame, cutoff: pd.Timestamp) -> pd.Timestamp:
    """The first date by which the export records both a won and a not-won close (before
    `cutoff`); its first creation when it has not recorded both yet."""
    deals = opportunities
    closed = deals[Opportunities.closed_at]
    before = closed.notna() & (closed < cutoff)
    won = deals[Opportunities.status] == Status.WON.value
    first_created = deals[Opportunities.created_at].min()
    firsts = [closed[before & won].min(), closed[before & ~won].min()]
    if any(pd.isna(first) for first in firsts):
        return first_created
    return max(first_created, *firsts)


def won_cycles(opportunities: pd.DataFrame, cutoff: pd.Timestamp) -> pd.Series:
    """Days from creation to close of the deals won before `cutoff`."""
    deals = opportunities
    won = (deals[Opportunities.status] == Status.WON.value) & (
        deals[Opportunities.closed_at] < cutoff
    )
    return (
        deals.loc[won, Opportunities.closed_at] - deals.loc[won, Opportunities.created_at]
    ) / pd.Timedelta(days=1)


def auto_horizon(opportunities: pd.DataFrame, cutoff: pd.Timestamp) -> tuple[float, str]:
    """The auto horizon in whole days, and why it is shorter than the won cycles' 90th
    percentile when the history is too short for it ("" when it is not). A choice of window,
    not a label: no row is picked by it."""
    cycle = won_cycles(opportunities, cutoff)
    if cycle.empty:
        return HORIZON_BOUNDS[1], ""
    wanted = float(np.ceil(cycle.quantile(HORIZON_QUANTILE)))
    span = (cutoff - history_start(opportunities, cutoff)) / pd.Timedelta(days=1)
    cap = float(np.floor(HORIZON_SHARE * span))
    horizon = float(np.clip(min(wanted, cap), *HORIZON_BOUNDS))
    if horizon >= min(wanted, HORIZON_BOUNDS[1]):
        return horizon, ""
    return horizon, (
        f"the 90th percentile of won deals' cycles is {wanted:g} days, but {span:,.0f} days of "
        f"history can label a window of about {max(cap, HORIZON_BOUNDS[0]):g}"
    )


def label_horizon(opportunities: pd.DataFrame, cutoff: pd.Timestamp) -> float:
    """The auto horizon in whole days (`auto_horizon`)."""
    return auto_horizon(opportunities, cutoff)[0]


def grid_dates(
    first: pd.Timestamp, last: pd.Timestamp, every_days: float, seed: int = 0
) -> pd.DatetimeIndex:
    """One date in each `every_days` interval counted back from `last`, at a seeded uniform
    point inside it; ascending, in (first, last].

    Why not exact steps: weekly reps' calls, weekly grid dates and a fixed time of day would
    give "days since the last call" one phase in training, and the nightly run meets every
    phase. Spread over the week and the day, the rows cover what scoring will see.
    """
    if last <= first:
        return pd.DatetimeIndex([], tz="UTC")
    step = pd.Timedelta(days=every_days)
    count = int((last - first) / step) + 1
    offset = np.arange(count)[::-1] + np.random.default_rng(seed).random(count)[::-1]
    dates = last - pd.to_timedelta(offset * every_days, unit="D").round("us")
    return pd.DatetimeIndex(dates)[dates > first]


def _open_on(opportunities: pd.DataFrame, dates: pd.DatetimeIndex) -> tuple[np.ndarray, ...]:
    """Every (deal position, grid date) with the deal open at the date: created < t <= closed
    (as in build_features). Returns the positions, the dates (microseconds) and the closes."""
    deals = opportunities
    grid = micros(pd.Series(dates))
    created = micros(deals[Opportunities.created_at])
    closed_at = deals[Opportunities.closed_at]
    closed = np.where(closed_at.notna(), micros(closed_at), np.iinfo(np.int64).max)
    # First grid date after creation, last grid date at or before the close.
    first = np.searchsorted(grid, created, side="right")
    last = np.searchsorted(grid, closed, side="right") - 1
    count = np.maximum(last - first + 1, 0)
    row = np.repeat(np.arange(len(deals)), count)
    slot = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
    return row, grid[first[row] + slot], closed[row]


def grid_snapshots(
    opportunities: pd.DataFrame,
    cutoff: pd.Timestamp,
    settings: SnapshotSettings,
    horizon_days: float,
    start: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Every deal open at each grid date after `start` (default: `history_start`) whose label
    window [as_of, as_of + H) ended by `cutoff`.

    Each row: opportunity_id, as_of, label (won within H days), outcome within the window (won,
    lost, no_decision, or open when still open at its end), and weight: 1, or
    age_weight_days / age for older deals, so a deal open for years does not outweigh the rest
    (a function of the deal's past only: its age is also a feature).
    """
    deals = opportunities
    horizon = pd.Timedelta(days=horizon_days)
    first = history_start(deals, cutoff) if start is None else start
    dates = grid_dates(first, cutoff - horizon, settings.every_days, settings.seed)
    columns = [OPPORTUNITY_ID, AS_OF, "label", "outcome", "weight"]
    if len(dates) == 0:
        return SnapshotFrame.validate(_empty(columns))
    row, as_of, closed = _open_on(deals, dates)
    status = deals[Opportunities.status].to_numpy(dtype=object)[row]
    ended = closed < as_of + int(horizon_days * DAY)
    frame = pd.DataFrame(
        {
            OPPORTUNITY_ID: deals[Opportunities.opportunity_id].to_numpy()[row],
            AS_OF: pd.to_datetime(as_of, unit="us", utc=True),
            "label": ((status == Status.WON.value) & ended).astype(np.int64),
            "outcome": np.where(ended, status, OPEN).astype(str),
            "weight": _age_weight(deals, row, as_of, settings),
        }
    )
    return SnapshotFrame.validate(frame[columns])


def quarter_snapshots(
    opportunities: pd.DataFrame,
    cutoff: pd.Timestamp,
    settings: SnapshotSettings,
    horizon_days: float,
) -> pd.DataFrame:
    """Every deal open at each grid date of the last horizon before `cutoff` (whose label
    windows have not ended) whose calendar quarter ended by `cutoff`: opportunity_id, as_of and
    weight as in `grid_snapshots`. Whether such a deal was won in its quarter is known at the
    cut-off; chosen by date alone."""
    dates = grid_dates(
        cutoff - pd.Timedelta(days=horizon_days), cutoff, settings.every_days, settings.seed
    )
    grid = micros(pd.Series(dates))
    dates = dates[quarter_end_micros(grid) <= micros(pd.Series([cutoff]))[0]]
    row, as_of, _ = _open_on(opportunities, dates)
    return pd.DataFrame(
        {
            OPPORTUNITY_ID: opportunities[Opportunities.opportunity_id].to_numpy()[row],
            AS_OF: pd.to_datetime(as_of, unit="us", utc=True),
            "weight": _age_weight(opportunities, row, as_of, settings),
        }
    )


def _age_weight(
    opportunities: pd.DataFrame, row: np.ndarray, as_of: np.ndarray, settings: SnapshotSettings
) -> np.ndarray:
    """Each snapshot's weight: 1, or age_weight_days / age for deals older than that."""
    age = (as_of - micros(opportunities[Opportunities.created_at])[row]) / DAY
    return np.minimum(1.0, settings.age_weight_days / np.maximum(age, 1e-9))


RECENT_DATES = 6  # grid dates of the last horizon that measure a recent change


def recent_snapshots(
    opportunities: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: float, seed: int = 0
) -> pd.DataFrame:
    """Every deal open at `RECENT_DATES` dates spread over the last horizon before `cutoff`,
    whose windows have not ended: opportunity_id, as_of, elapsed_days (from as_of to the
    cut-off) and won_so_far (won before the cut-off). Chosen by date alone; what they say is
    known at the cut-off."""
    every = horizon_days / RECENT_DATES
    dates = grid_dates(cutoff - pd.Timedelta(days=horizon_days), cutoff, every, seed)
    dates = dates[dates < cutoff]
    row, as_of, closed = _open_on(opportunities, dates)
    status = opportunities[Opportunities.status].to_numpy(dtype=object)[row]
    cut = micros(pd.Series([cutoff]))[0]
    return pd.DataFrame(
        {
            OPPORTUNITY_ID: opportunities[Opportunities.opportunity_id].to_numpy()[row],
            AS_OF: pd.to_datetime(as_of, unit="us", utc=True),
            "elapsed_days": (cut - as_of) / DAY,
            "won_so_far": ((status == Status.WON.value) & (closed < cut)).astype(np.int64),
        }
    )


def _empty(columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    frame[OPPORTUNITY_ID] = frame[OPPORTUNITY_ID].astype(str)
    frame[AS_OF] = pd.Series(dtype="datetime64[us, UTC]")
    frame["label"] = frame["label"].astype(np.int64)
    frame["outcome"] = frame["outcome"].astype(str)
    return frame
