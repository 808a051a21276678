"""Prospect behaviour as of T: who drives the deal, how fast they answer, who shows up late.

Computed in the same pass over activities as engagement (see engagement.py); late entry, the
other prospect signal, comes from stage history and lives with the deal dynamics.
"""

from __future__ import annotations

import numpy as np

from dealscore.features.activity_pass import MISSING
from dealscore.features.catalogue import family
from dealscore.features.pit import DAY
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


def inbound_share(n_inbound: np.ndarray, n_directed: np.ndarray) -> np.ndarray:
    """Share of the last 90 days' directed touches that were inbound (missing if none)."""
    return np.where(n_directed > 0, n_inbound / np.maximum(n_directed, 1), np.nan)


def response_latency(cum: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean latency of inbound replies before as_of: each inbound vs the deal's last outbound;
    `cum` the running sum of all replies' hours, a snapshot's replies are those in [lo, hi)."""
    n = hi - lo
    return np.where(n > 0, (cum[hi] - cum[lo]) / np.maximum(n, 1), np.nan)


def new_senior_stakeholder(first_time: np.ndarray, t: np.ndarray) -> np.ndarray:
    """1.0 where the deal's first senior contact (VP+) first appeared in the 30 days before as_of
    (`first_time`: its first touch, MISSING if none ever)."""
    has_senior = first_time != MISSING
    return (has_senior & (first_time < t) & (first_time >= t - 30 * DAY)).astype(float)
