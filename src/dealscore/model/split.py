"""Time-based slices by close date: train, validation (early stopping), calibration, test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dealscore.schemas.tables import Opportunities

SLICES = ("train", "validation", "calibration", "test")


@dataclass(frozen=True)
class SliceShares:
    """Shares of resolved deals, in close-date order, for each slice (they sum to 1)."""

    train: float = 0.6
    validation: float = 0.1
    calibration: float = 0.15
    test: float = 0.15

    def __post_init__(self) -> None:
        shares = [self.train, self.validation, self.calibration, self.test]
        if min(shares) <= 0 or abs(sum(shares) - 1) > 1e-9:
            raise ValueError(f"slice shares must be positive and sum to 1, got {shares}")

    def boundaries(self, opportunities: pd.DataFrame) -> pd.Series:
        """Close-date boundary where each slice after train starts, from resolved deals."""
        closed = opportunities[Opportunities.closed_at].dropna().sort_values()
        if closed.empty:
            raise ValueError("no resolved deals to split")
        cuts = np.cumsum([self.train, self.validation, self.calibration])
        positions = np.minimum((cuts * len(closed)).astype(int), len(closed) - 1)
        return pd.Series(closed.iloc[positions].to_numpy(), index=list(SLICES[1:]))


def assign_slices(
    snapshots: pd.DataFrame, opportunities: pd.DataFrame, boundaries: pd.Series
) -> pd.Series:
    """Each snapshot's slice, by its deal's close date (so a deal never spans two slices)."""
    closed = opportunities.set_index(Opportunities.opportunity_id)[Opportunities.closed_at]
    when = snapshots[Opportunities.opportunity_id].map(closed)
    slice_index = np.searchsorted(boundaries.to_numpy(), when.to_numpy(), side="right")
    return pd.Series(np.array(SLICES)[slice_index], index=snapshots.index)


PURGED = "purged"


def date_slices(
    as_of: pd.Series, ids: pd.Series, horizon_days: float, shares: SliceShares, seed: int = 0
) -> tuple[pd.Series, pd.Series]:
    """Slices by snapshot date, the latest last, with no label window straddling a boundary.

    Test: the latest `test` share of rows; calibration: the `calibration` share before it;
    train + validation: the rest. Rows whose window [as_of, as_of + horizon) reaches into the
    next slice are purged (slice "purged"), so no outcome is seen by two slices. Validation (early
    stopping) is a `validation` share of the training period's deals, drawn by deal, so all of a
    deal's rows fall on one side. Returns each row's slice and the slice start dates.
    """
    times = pd.to_datetime(as_of, utc=True)
    horizon = pd.Timedelta(days=horizon_days)
    dates = np.sort(times.unique())
    per_date = times.value_counts().reindex(dates).to_numpy()
    after = np.cumsum(per_date[::-1])[::-1]  # rows at or after each date
    total = len(times)

    def too_short() -> ValueError:
        return ValueError(
            f"the history is too short for slices of these shares with a label horizon of "
            f"{horizon_days:g} days (each boundary purges that much): {total:,} snapshot rows "
            f"from {dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}; lower horizon_days or the shares"
        )

    def start_holding(share: float, end: pd.Timestamp) -> pd.Timestamp:
        """The latest date d such that the rows in [d, end) are at least share x total."""
        before_end = after - (after[np.searchsorted(dates, end)] if end <= dates[-1] else 0)
        enough = np.flatnonzero((before_end >= share * total) & (dates < end))
        if len(enough) == 0:
            raise too_short()
        return pd.Timestamp(dates[enough[-1]])

    last = pd.Timestamp(dates[-1]) + pd.Timedelta(microseconds=1)
    test_from = start_holding(shares.test, last)
    calibration_from = start_holding(shares.calibration, test_from - horizon)
    train_end = calibration_from - horizon
    if not (times < train_end).any():
        raise too_short()
    names = np.select(
        [
            times >= test_from,
            (times >= calibration_from) & (times < test_from - horizon),
            times < train_end,
        ],
        ["test", "calibration", "train"],
        PURGED,
    )
    draw = pd.util.hash_pandas_object(ids.astype(str), index=False, hash_key=f"{seed:016d}")
    in_validation = (draw.to_numpy() % 10_000) < 10_000 * shares.validation / (
        shares.train + shares.validation
    )
    names = np.where((names == "train") & in_validation, "validation", names)
    boundaries = pd.Series(
        [pd.Timestamp(dates[0]), train_end, calibration_from, test_from],
        index=["train", "train_end", "calibration", "test"],
    )
    return pd.Series(names, index=as_of.index), boundaries
