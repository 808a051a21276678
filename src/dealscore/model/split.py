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
