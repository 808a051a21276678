"""Winning within a period is not winning ever: deals slip. How late do won deals close?

From history strictly before as_of: every stage-history row of a deal won before as_of says
when the deal was then expected to close; the deal's actual close minus that date is a slip.
P(a deal won closes by the period's end) is the share of those slips no larger than the room
left between its current expected close and the period's end (docs/forecast.md).
"""

from __future__ import annotations

import numpy as np

from dealscore.features.pit import DAY, micros
from dealscore.schemas.tables import CrmTables, Opportunities, StageHistory, Status

MIN_SLIPS = 30  # fewer won deals with a dated expectation than this: no history to go by


def won_slips(tables: CrmTables, before: int) -> np.ndarray:
    """Sorted slips in days (actual close - then expected close) of deals won before `before`
    (microseconds), one per stage-history row that carried an expected close date."""
    history = tables.stage_history
    if history is None or StageHistory.close_date not in history:
        return np.empty(0)
    deals = tables.opportunities
    won = deals[
        (deals[Opportunities.status] == Status.WON) & (deals[Opportunities.closed_at].notna())
    ]
    closed = won.set_index(Opportunities.opportunity_id)[Opportunities.closed_at]
    closed = closed[micros(closed) < before]
    rows = history[
        history[StageHistory.opportunity_id].isin(closed.index)
        & history[StageHistory.close_date].notna()
    ]
    changed = micros(rows[StageHistory.changed_at])
    actual = micros(rows[StageHistory.opportunity_id].map(closed))
    expected = micros(rows[StageHistory.close_date])
    keep = changed < actual  # the closing row's "expected" date is the close itself
    return np.sort((actual[keep] - expected[keep]) / DAY)


def close_by(slips: np.ndarray, expected_close: np.ndarray, period_end: int) -> np.ndarray:
    """P(closes before `period_end` | won), per deal, from the deal's expected close (both in
    microseconds; NaN where unknown) and the slips of history. 1 where history is too thin."""
    room = (period_end - expected_close) / DAY
    if len(slips) < MIN_SLIPS:
        return np.where(np.isnan(expected_close), np.nan, 1.0)
    share = np.searchsorted(slips, room, side="left") / len(slips)  # slips strictly under room
    return np.where(np.isnan(expected_close), np.nan, share)
