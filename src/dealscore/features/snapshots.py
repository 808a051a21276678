"""Training snapshots.

`grid` (the default): the nightly scorer's own population. On a calendar grid (every N days,
anchored on the cut-off), every deal open at each grid date, labelled "won within H days of the
snapshot", and used only where that window ended before the cut-off. Nothing about a row is
chosen by its future: which deals are open at a date, and whether their window has ended, are
known at the window's end. A deal still open when its window ends is "not won within H".

`per_deal` and `periodic` (kept to show what they get wrong): snapshots inside the lives of deals
resolved before the cut-off. They drop deals still open at the cut-off (recent slow losses), so
recent cohorts look like fast wins, and `per_deal` ages a snapshot by the deal's whole length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from dealscore.features.pit import DAY, micros
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID, SnapshotFrame
from dealscore.schemas.tables import Opportunities, Status

OPEN = Status.OPEN.value
HORIZON_QUANTILE = 0.9  # auto horizon: this quantile of won deals' cycles...
HORIZON_BOUNDS = (30.0, 365.0)  # ...kept within these days


@dataclass(frozen=True)
class SnapshotSettings:
    """How training snapshots are drawn (docs/features.md explains the choice)."""

    scheme: Literal["grid", "per_deal", "periodic"] = "grid"
    per_deal: int = 4  # per_deal: this many snapshots per deal, one in each equal slice of its life
    every_days: float = 7.0  # grid / periodic: days between snapshots
    horizon_days: float = 0.0  # grid: label = won within this many days; 0 = auto
    age_weight_days: float = 90.0  # grid: rows of deals older than this weigh age_weight_days / age
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scheme not in ("grid", "per_deal", "periodic"):
            raise ValueError(f"scheme must be grid, per_deal or periodic, got {self.scheme!r}")
        if self.per_deal < 1 or self.every_days <= 0:
            raise ValueError("per_deal must be >= 1 and every_days > 0")
        if self.horizon_days < 0 or self.age_weight_days <= 0:
            raise ValueError("horizon_days must be >= 0 (0 = auto) and age_weight_days > 0")


def label_horizon(opportunities: pd.DataFrame, cutoff: pd.Timestamp) -> float:
    """The auto horizon in whole days: the 90th percentile of the cycles of deals won before
    `cutoff`, within 30..365 days (a choice of window, not a label: no row is picked by it)."""
    deals = opportunities
    won = (deals[Opportunities.status] == Status.WON.value) & (
        deals[Opportunities.closed_at] < cutoff
    )
    cycle = (
        deals.loc[won, Opportunities.closed_at] - deals.loc[won, Opportunities.created_at]
    ) / pd.Timedelta(days=1)
    if cycle.empty:
        return HORIZON_BOUNDS[1]
    return float(np.clip(np.ceil(cycle.quantile(HORIZON_QUANTILE)), *HORIZON_BOUNDS))


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


def grid_snapshots(
    opportunities: pd.DataFrame,
    cutoff: pd.Timestamp,
    settings: SnapshotSettings,
    horizon_days: float,
) -> pd.DataFrame:
    """Every deal open at each grid date whose label window [as_of, as_of + H) ended by `cutoff`.

    Each row: opportunity_id, as_of, label (won within H days), outcome within the window (won,
    lost, no_decision, or open when still open at its end), and weight: 1, or
    age_weight_days / age for older deals, so a deal open for years does not outweigh the rest
    (a function of the deal's past only: its age is also a feature).
    """
    deals = opportunities
    horizon = pd.Timedelta(days=horizon_days)
    dates = grid_dates(
        deals[Opportunities.created_at].min(), cutoff - horizon, settings.every_days, settings.seed
    )
    columns = [OPPORTUNITY_ID, AS_OF, "label", "outcome", "weight"]
    if len(dates) == 0:
        return SnapshotFrame.validate(_empty(columns))
    grid = micros(pd.Series(dates))
    created = micros(deals[Opportunities.created_at])
    closed_at = deals[Opportunities.closed_at]
    closed = np.where(closed_at.notna(), micros(closed_at), np.iinfo(np.int64).max)
    # Open at t: created < t <= closed (as in build_features). First grid date after creation,
    # last grid date at or before the close.
    first = np.searchsorted(grid, created, side="right")
    last = np.searchsorted(grid, closed, side="right") - 1
    count = np.maximum(last - first + 1, 0)
    row = np.repeat(np.arange(len(deals)), count)
    slot = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
    as_of = grid[first[row] + slot]
    window_end = as_of + int(horizon_days * DAY)
    status = deals[Opportunities.status].to_numpy(dtype=object)[row]
    ended = closed[row] < window_end
    age = (as_of - created[row]) / DAY
    frame = pd.DataFrame(
        {
            OPPORTUNITY_ID: deals[Opportunities.opportunity_id].to_numpy()[row],
            AS_OF: pd.to_datetime(as_of, unit="us", utc=True),
            "label": ((status == Status.WON.value) & ended).astype(np.int64),
            "outcome": np.where(ended, status, OPEN).astype(str),
            "weight": np.minimum(1.0, settings.age_weight_days / np.maximum(age, 1e-9)),
        }
    )
    return SnapshotFrame.validate(frame[columns])


def _empty(columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    frame[OPPORTUNITY_ID] = frame[OPPORTUNITY_ID].astype(str)
    frame[AS_OF] = pd.Series(dtype="datetime64[us, UTC]")
    frame["label"] = frame["label"].astype(np.int64)
    frame["outcome"] = frame["outcome"].astype(str)
    return frame


def sample_snapshots(
    opportunities: pd.DataFrame, cutoff: pd.Timestamp, settings: SnapshotSettings
) -> pd.DataFrame:
    """Snapshots of deals resolved strictly before `cutoff` (the legacy schemes: open deals are
    dropped, which biases recent cohorts toward fast outcomes; see the module docstring).

    Each row: opportunity_id, as_of (created_at < as_of <= closed_at), label (1 = won),
    outcome, life_fraction, and weight (rows of one deal sum to 1).
    """
    if settings.scheme == "grid":
        raise ValueError("grid snapshots come from grid_snapshots (or snapshots), not here")
    closed_at = opportunities[Opportunities.closed_at]
    created_at = opportunities[Opportunities.created_at]
    resolved = closed_at.notna() & (closed_at < cutoff) & (closed_at > created_at)
    deals = opportunities[resolved]
    created = micros(deals[Opportunities.created_at])
    life = micros(deals[Opportunities.closed_at]) - created
    rng = np.random.default_rng(settings.seed)
    if settings.scheme == "per_deal":
        count = np.full(len(deals), settings.per_deal)
    else:
        count = np.maximum(1, np.floor(life / (settings.every_days * DAY)).astype(np.int64))
    row = np.repeat(np.arange(len(deals)), count)
    slot = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
    if settings.scheme == "per_deal":
        # Stratified: one uniform draw inside each of `count` equal slices of the deal's life.
        fraction = (slot + rng.random(len(row))) / count[row]
    else:
        fraction = (slot + 1) * settings.every_days * DAY / np.maximum(life[row], 1)
    fraction = np.clip(fraction, 1e-9, 1.0)
    offset = np.maximum(np.round(fraction * life[row]).astype(np.int64), 1)
    status = deals[Opportunities.status].to_numpy()[row]
    frame = pd.DataFrame(
        {
            OPPORTUNITY_ID: deals[Opportunities.opportunity_id].to_numpy()[row],
            AS_OF: pd.to_datetime(created[row] + offset, unit="us", utc=True),
            "label": (status == Status.WON.value).astype(np.int64),
            "outcome": status,
            "life_fraction": fraction,
            "weight": 1.0 / count[row],
        }
    )
    return SnapshotFrame.validate(frame)


def snapshots(
    opportunities: pd.DataFrame,
    cutoff: pd.Timestamp,
    settings: SnapshotSettings,
    horizon_days: float,
) -> pd.DataFrame:
    """The training rows of `settings.scheme` (horizon_days is used by `grid` only)."""
    if settings.scheme == "grid":
        return grid_snapshots(opportunities, cutoff, settings, horizon_days)
    return sample_snapshots(opportunities, cutoff, settings)
