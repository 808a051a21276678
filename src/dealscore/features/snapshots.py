"""Training snapshots: each resolved deal sampled at several times in its life, labelled by outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from dealscore.features.pit import micros
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID, SnapshotFrame
from dealscore.schemas.tables import Opportunities, Status


@dataclass(frozen=True)
class SnapshotSettings:
    """How training snapshots are drawn (docs/features.md explains the choice)."""

    scheme: Literal["per_deal", "periodic"] = "per_deal"
    per_deal: int = 4  # per_deal: this many snapshots per deal, one in each equal slice of its life
    every_days: float = 14.0  # periodic: one snapshot every so many days while the deal is open
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scheme not in ("per_deal", "periodic"):
            raise ValueError(f"scheme must be per_deal or periodic, got {self.scheme!r}")
        if self.per_deal < 1 or self.every_days <= 0:
            raise ValueError("per_deal must be >= 1 and every_days > 0")


def sample_snapshots(
    opportunities: pd.DataFrame, cutoff: pd.Timestamp, settings: SnapshotSettings
) -> pd.DataFrame:
    """Snapshots of deals resolved strictly before `cutoff` (right-censoring: open ones are not labelled).

    Each row: opportunity_id, as_of (created_at < as_of <= closed_at), label (1 = won),
    outcome, life_fraction, and weight (rows of one deal sum to 1).
    """
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
        count = np.maximum(1, np.floor(life / (settings.every_days * 86_400e6)).astype(np.int64))
    row = np.repeat(np.arange(len(deals)), count)
    slot = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
    if settings.scheme == "per_deal":
        # Stratified: one uniform draw inside each of `count` equal slices of the deal's life.
        fraction = (slot + rng.random(len(row))) / count[row]
    else:
        fraction = (slot + 1) * settings.every_days * 86_400e6 / np.maximum(life[row], 1)
    fraction = np.clip(fraction, 1e-9, 1.0)
    as_of = created[row] + np.maximum(np.round(fraction * life[row]).astype(np.int64), 1)
    status = deals[Opportunities.status].to_numpy()[row]
    frame = pd.DataFrame(
        {
            OPPORTUNITY_ID: deals[Opportunities.opportunity_id].to_numpy()[row],
            AS_OF: pd.to_datetime(as_of, unit="us", utc=True),
            "label": (status == Status.WON.value).astype(np.int64),
            "outcome": status,
            "life_fraction": fraction,
            "weight": 1.0 / count[row],
        }
    )
    return SnapshotFrame.validate(frame)
