"""What the CRM itself said about each deal as of T: the contenders a model must beat.

Not model features: evaluation compares the model with them on the same snapshots. They follow
the same point-in-time rule (rows strictly before as_of), and the leakage test covers them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.features.build import snapshots_at
from dealscore.features.forecast import CATEGORY_PROBABILITY, latest_forecast, rep_probability
from dealscore.features.pit import asof_state, micros
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID
from dealscore.schemas.tables import CrmTables, StageHistory

COLUMNS = ["rep_category", "rep_probability", "stage_probability"]


def crm_baselines(
    tables: CrmTables,
    as_of: pd.Timestamp | str | pd.DataFrame,
    category_probability: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Per open (deal, as_of): the rep's latest forecast category and probability (their own, else
    the category's), and the CRM's stage probability, all from rows strictly before as_of."""
    mapping = category_probability or CATEGORY_PROBABILITY
    snaps = snapshots_at(tables, as_of)
    out = pd.DataFrame(
        {
            OPPORTUNITY_ID: snaps.ids[snaps.deal].astype("str"),
            AS_OF: pd.to_datetime(snaps.as_of, unit="us", utc=True),
            "rep_category": pd.Series(pd.NA, index=range(len(snaps)), dtype="str"),
            "rep_probability": np.nan,
            "stage_probability": np.nan,
        }
    )
    latest = latest_forecast(tables, snaps)
    if latest is not None:
        category = latest["category"]
        out["rep_category"] = category.astype("str").where(category.notna()).to_numpy()
        out["rep_probability"] = rep_probability(latest, mapping)
    history = tables.stage_history
    if history is not None and StageHistory.probability in history:
        events = pd.DataFrame(
            {
                "deal": snaps.codes(history[StageHistory.opportunity_id]),
                "t": micros(history[StageHistory.changed_at]),
                "p": history[StageHistory.probability].to_numpy(dtype=float),
            }
        )
        out["stage_probability"] = asof_state(snaps, events, "t", ["p"])["p"].to_numpy()
    return out
