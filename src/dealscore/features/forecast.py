"""The rep's own call as of T: their latest submitted forecast, and how it moved.

Reps know things the CRM does not (a champion's private word, a budget freeze); the model weighs
their call against the record. The same latest-forecast lookup serves the rep baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.features.catalogue import Feature, family
from dealscore.features.icp import closed_deals
from dealscore.features.pit import (
    DAY,
    Snapshots,
    asof_by_key,
    asof_state,
    micros,
    quarter_end_micros,
)
from dealscore.schemas.keys import positions
from dealscore.schemas.tables import (
    CrmTables,
    ForecastCategory,
    Forecasts,
    Opportunities,
    values,
)

# Conventional probabilities of forecast categories, for reps who give none. Evaluation can
# replace them with each category's win rate on the training slice.
CATEGORY_PROBABILITY: dict[str, float] = {
    ForecastCategory.COMMIT: 0.9,
    ForecastCategory.BEST_CASE: 0.6,
    ForecastCategory.PIPELINE: 0.25,
    ForecastCategory.OMITTED: 0.05,
}
CATEGORY_RANK: dict[str, float] = {
    ForecastCategory.OMITTED: 0.0,
    ForecastCategory.PIPELINE: 1.0,
    ForecastCategory.BEST_CASE: 2.0,
    ForecastCategory.COMMIT: 3.0,
}
CHANGE_DAYS = 28

FEATURES: list[Feature] = family(
    "forecast",
    ("forecasts",),
    rep_probability="the rep's latest submitted probability, else their category's conventional one",
    rep_category_rank="the rep's latest forecast category: omitted 0, pipeline 1, best case 2, commit 3",
    rep_category_change_28d="category rank now minus 28 days earlier (negative: the rep downgraded it)",
    days_since_forecast="days since the rep last submitted a forecast for the deal",
    forecast_from_earlier_quarter="1 if the rep's latest call was made in an earlier quarter (a quarter-end call, stale once the quarter turns)",
    owner_forecast_bias="how far the owner's last call on deals closed before as_of ran above the outcome (probability minus won), shrunk to 0",
)
BIAS_PRIOR = 10.0  # closed deals' worth of weight on "no bias"
NAMES = [f.name for f in FEATURES]
# The reps' own inputs: left out of reasons by default, and of an independent model.
REP_INPUTS: frozenset[str] = frozenset(f.name for f in FEATURES)


def forecast_events(tables: CrmTables, ids: pd.Index) -> pd.DataFrame | None:
    """The forecasts as events of the deals in `ids` (code, time, category, own probability,
    time as a float); None when the export has none. Built once, read by every lookup."""
    forecasts = tables.forecasts
    if forecasts is None or not len(forecasts):
        return None
    categories = pd.Index(values(ForecastCategory), dtype="str")
    category = positions(forecasts[Forecasts.forecast_category], categories)
    t = micros(forecasts[Forecasts.submitted_at])
    return pd.DataFrame(
        {
            "deal": positions(forecasts[Forecasts.opportunity_id], ids),
            "t": t,
            "category": pd.Categorical.from_codes(category, categories=categories),
            "own": forecasts[Forecasts.probability].to_numpy(dtype=float)
            if Forecasts.probability in forecasts
            else np.nan,
            "submitted": t.astype(float),
        }
    )


def latest_forecast(
    tables: CrmTables, snaps: Snapshots, events: pd.DataFrame | None = None
) -> pd.DataFrame | None:
    """Per snapshot, the latest forecast strictly before as_of: category, own probability, time
    (NaN where none); None when the export has no forecasts. `events`: `forecast_events` of
    the snapshots' ids, when the caller already has them."""
    if events is None:
        events = forecast_events(tables, snaps.ids)
    if events is None:
        return None
    return asof_state(snaps, events, "t", ["category", "own", "submitted"])


def rep_probability(latest: pd.DataFrame, mapping: dict[str, float]) -> np.ndarray:
    """The rep's own probability where given, else the category's."""
    implied = latest["category"].map(mapping).to_numpy(dtype=float)
    own = latest["own"].to_numpy(dtype=float)
    return np.where(np.isnan(own), implied, own)


def forecast_features(tables: CrmTables, snaps: Snapshots) -> pd.DataFrame:
    """The rep's call as of the snapshot; NaN where the deal has no forecast yet."""
    out = pd.DataFrame(np.nan, index=range(len(snaps)), columns=NAMES)
    events = forecast_events(tables, snaps.ids)
    latest = latest_forecast(tables, snaps, events)
    if latest is None:
        return out
    earlier = latest_forecast(
        tables, Snapshots(snaps.deal, snaps.as_of - CHANGE_DAYS * DAY, snaps.ids), events
    )
    assert earlier is not None  # the export has forecasts: `latest` was found
    rank = latest["category"].map(CATEGORY_RANK).to_numpy(dtype=float)
    out["rep_probability"] = rep_probability(latest, CATEGORY_PROBABILITY)
    out["rep_category_rank"] = rank
    out["rep_category_change_28d"] = rank - earlier["category"].map(CATEGORY_RANK).to_numpy(
        dtype=float
    )
    submitted = latest["submitted"].to_numpy()
    out["days_since_forecast"] = (snaps.as_of - submitted) / DAY
    # Reps push deals into commit as a quarter ends; at the next quarter's start that call is
    # still the latest one, about a quarter already over.
    made_earlier = quarter_end_micros(np.nan_to_num(submitted).astype(np.int64)) <= snaps.as_of
    out["forecast_from_earlier_quarter"] = np.where(
        np.isnan(submitted), np.nan, made_earlier.astype(float)
    )
    out["owner_forecast_bias"] = owner_forecast_bias(tables, snaps, events)
    return out


def owner_forecast_bias(
    tables: CrmTables, snaps: Snapshots, events: pd.DataFrame | None = None
) -> np.ndarray:
    """Per snapshot: the owner's mean (last call - outcome) over their deals closed before as_of.

    Each closed deal contributes the rep's last forecast before its close, so a deal counts from
    its closed_at on, like every other outcome.
    """
    deals = tables.opportunities
    if Opportunities.owner_id not in deals:
        return np.full(len(snaps), np.nan)
    closed, times, won, _ = closed_deals(tables)
    at_close = Snapshots(np.flatnonzero(closed), times[closed], snaps.ids)
    last = latest_forecast(tables, at_close, events)
    call = rep_probability(last, CATEGORY_PROBABILITY)
    called = np.isfinite(call)
    owners, _ = pd.factorize(deals[Opportunities.owner_id])
    cum = asof_by_key(
        snaps.as_of,
        owners[snaps.deal],
        times[closed][called],
        owners[closed][called],
        {"gap": call[called] - won[closed][called], "n": np.ones(called.sum())},
    )
    return cum["gap"].to_numpy() / (cum["n"].to_numpy() + BIAS_PRIOR)
