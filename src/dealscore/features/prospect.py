"""Prospect behaviour as of T: who drives the deal, how fast they answer, who shows up late.

Computed in the same pass over activities as engagement (see engagement.py); late entry, the
other prospect signal, comes from stage history and lives with the deal dynamics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.features.catalogue import family
from dealscore.features.pit import DAY, SortedEvents
from dealscore.schemas.tables import Direction

FEATURES = family(
    "prospect",
    ("activities", "contacts"),
    inbound_share_90d="share of the last 90 days' directed touches the prospect initiated",
    response_latency_hours="mean hours from our outbound touch to the prospect's next inbound one",
    new_senior_stakeholder_30d="1 if a VP or executive first appeared on the deal in the last 30 days",
)
DIRECTION_CODE = {d: i for i, d in enumerate(Direction)}
INBOUND, OUTBOUND = DIRECTION_CODE[Direction.INBOUND], DIRECTION_CODE[Direction.OUTBOUND]
SENIOR = 3  # seniority rank of a VP; executives are 4


def inbound_share(
    events: SortedEvents, direction: np.ndarray, d: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Share of the last 90 days' directed touches that were inbound (missing if none)."""
    inbound = direction == INBOUND
    n_directed = events.subset(inbound | (direction == OUTBOUND)).count(d, t - 90 * DAY, t)
    n_inbound = events.subset(inbound).count(d, t - 90 * DAY, t)
    return np.where(n_directed > 0, n_inbound / np.maximum(n_directed, 1), np.nan)


def response_latency(
    events: SortedEvents, direction: np.ndarray, d: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Mean latency of inbound replies before as_of: each inbound vs the deal's last outbound."""
    outbound_time = pd.Series(np.where(direction == OUTBOUND, events.time, np.nan))
    last_outbound = outbound_time.groupby(events.deal).ffill().to_numpy()
    is_reply = (direction == INBOUND) & ~np.isnan(last_outbound)
    replies = events.subset(is_reply)
    hours = (events.time[is_reply] - last_outbound[is_reply]) / (DAY / 24)
    n = replies.count_before(d, t)
    total = replies.sum_before(hours, d, t)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def new_senior_stakeholder(seniors: SortedEvents, d: np.ndarray, t: np.ndarray) -> np.ndarray:
    """1.0 where the deal's first senior contact (VP+) first appeared in the 30 days before as_of."""
    first = seniors.starts[d]
    has_senior = first < seniors.starts[d + 1]
    if not len(seniors.time):
        return np.zeros(len(d))
    first_time = seniors.time[np.minimum(first, len(seniors.time) - 1)]
    return (has_senior & (first_time < t) & (first_time >= t - 30 * DAY)).astype(float)
