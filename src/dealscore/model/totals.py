"""How a model's sums over the open deals compared with what they brought, at past dates: the
factor and the spread the quarter's number (pipeline/quarter.py) applies to its open part."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Days left in the quarter that cut it into two-week points: 0-7, 7-21, ... 77-91, more.
QUARTER_POINTS = (7.0, 21.0, 35.0, 49.0, 63.0, 77.0, 91.0)


def quarter_point(days_left: np.ndarray) -> np.ndarray:
    """Each days-left value's point of the quarter: the index of its band (QUARTER_POINTS)."""
    return np.searchsorted(QUARTER_POINTS, np.nan_to_num(np.asarray(days_left, dtype=float)))


def quarters_of(dates: pd.Series | pd.Index) -> tuple[str, ...]:
    """The calendar quarters the dates lie in ("2025Q4"), oldest first."""
    periods = pd.DatetimeIndex(pd.to_datetime(dates, utc=True)).tz_convert(None).to_period("Q")
    return tuple(str(q) for q in sorted(periods.unique()))


MIN_DATES = 4  # past dates at a point of the quarter before its own spread is used


@dataclass(frozen=True)
class CollectiveError:
    """How the open deals' expected bookings compared with what they brought, at past dates,
    per point of the quarter (QUARTER_POINTS), from the won-this-quarter model's out-of-fold
    probabilities in training."""

    # What won deals closed at, over their amount as of the date: deals are discounted on the
    # way to a signature, more the further off it is.
    factor: tuple[float, ...]
    # Standard deviation over dates of log(won / (factor x expected)): deals' fates move
    # together (a strong quarter lifts many), so wider than independent draws would be.
    spread: tuple[float, ...]
    # The calendar quarters its dates lie in ("2025Q4"): dates within one quarter share its
    # fate, so a record of one quarter cannot show how quarters differ. () in models saved
    # before it was kept.
    quarters: tuple[str, ...] = ()

    def at(self, days_left: float) -> tuple[float, float]:
        """(factor, spread) at a point of the quarter."""
        point = int(quarter_point(np.array([days_left]))[0])
        return self.factor[point], self.spread[point]


def collective_error(
    as_of: pd.Series,
    days_left: np.ndarray,
    amount: np.ndarray,
    won_amount: np.ndarray,
    p: np.ndarray,
    y: np.ndarray,
) -> CollectiveError:
    """CollectiveError from snapshot rows: their date, days left in the quarter, amount as of
    the date, amount as closed, out-of-fold P(won before the quarter ends) and whether it was.
    A point with fewer than MIN_DATES dates gets what every date together says."""
    frame = pd.DataFrame(
        {
            "as_of": as_of.to_numpy(),
            "won": won_amount * y,
            "won_then": amount * y,
            "expected": amount * p,
            "days": days_left,
        }
    ).dropna()
    dates = frame.groupby("as_of").agg(
        won=("won", "sum"),
        won_then=("won_then", "sum"),
        expected=("expected", "sum"),
        days=("days", "median"),
    )
    dates["point"] = quarter_point(dates["days"].to_numpy())
    sums = dates.groupby("point")[["won", "won_then"]].sum()
    pooled = float(dates["won"].sum() / dates["won_then"].sum()) if dates["won_then"].sum() else 1.0
    counts = dates.groupby("point").size()
    points = range(len(QUARTER_POINTS) + 1)
    enough = [
        k in counts.index and counts[k] >= MIN_DATES and sums.loc[k, "won_then"] > 0 for k in points
    ]
    factor = tuple(
        float(sums.loc[k, "won"] / sums.loc[k, "won_then"]) if ok else pooled
        for k, ok in zip(points, enough, strict=True)
    )
    floor = 0.01 * float(dates["expected"].mean()) if len(dates) else 0.0
    adjusted = dates["expected"] * np.asarray(factor)[dates["point"].to_numpy()]
    kept = adjusted > floor
    log_ratio = np.log((dates["won"][kept] + floor) / (adjusted[kept] + floor))
    pooled_sd = float(log_ratio.std()) if len(log_ratio) > 1 else 0.0
    by_point = log_ratio.groupby(dates["point"][kept]).agg(["std", "size"])
    spread = tuple(
        float(by_point.loc[k, "std"])
        if k in by_point.index and by_point.loc[k, "size"] >= MIN_DATES
        else pooled_sd
        for k in points
    )
    return CollectiveError(factor, spread, quarters_of(dates.index))
