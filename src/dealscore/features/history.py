"""History as of T: the owner's track record, never over all time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.features.catalogue import Feature, family
from dealscore.features.icp import PRIOR_STRENGTH, global_win_rate, matured_outcomes
from dealscore.features.pit import Snapshots, asof_by_key, smoothed_rate
from dealscore.schemas.tables import CrmTables, Opportunities

FEATURES: list[Feature] = family(
    "history",
    ("opportunities",),
    owner_win_rate="share of the owner's past deals won within the horizon of their creation, shrunk to the global rate",
    owner_past_deals="the owner's deals created at least a horizon before as_of (outcome window over)",
)
NAMES = [f.name for f in FEATURES]


def history_features(tables: CrmTables, snaps: Snapshots, maturity_days: float) -> pd.DataFrame:
    """The owner's track record as of the snapshot (never over all time), over deals whose
    first maturity_days ended before it (`matured_outcomes`: not censored toward fast wins)."""
    deals = tables.opportunities
    if Opportunities.owner_id not in deals:
        return pd.DataFrame(np.nan, index=range(len(snaps)), columns=NAMES)
    closed, times, won, _ = matured_outcomes(tables, maturity_days)
    codes, _ = pd.factorize(deals[Opportunities.owner_id])
    cum = asof_by_key(
        snaps.as_of,
        codes[snaps.deal],
        times[closed],
        codes[closed],
        {"won": won[closed], "n": np.ones(closed.sum())},
    )
    prior = global_win_rate(tables, snaps, maturity_days)
    return pd.DataFrame(
        {
            "owner_win_rate": smoothed_rate(
                cum["won"].to_numpy(), cum["n"].to_numpy(), prior, PRIOR_STRENGTH
            ),
            "owner_past_deals": cum["n"].to_numpy(),
        }
    )
