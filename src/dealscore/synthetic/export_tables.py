"""The generator's draws as the contract's tables: string ids and UTC timestamps from codes
and float days, with no Python object per row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.schemas.features import OPPORTUNITY_ID
from dealscore.schemas.tables import (
    TIMESTAMP_DTYPE,
    Accounts,
    Activities,
    Forecasts,
    Opportunities,
    StageHistory,
    Status,
)
from dealscore.synthetic.deals import (
    CLOSED_LOST,
    CLOSED_WON,
    DEAL_TYPE_EFFECT,
    LEAD_SOURCE_EFFECT,
    PRODUCTS,
    STAGE_FORECAST,
    STAGE_PROBABILITY,
    STAGES,
    Deals,
)
from dealscore.synthetic.engagement import ACTIVITY_TYPES, DIRECTIONS
from dealscore.synthetic.process import EVENT_NAMES, GRID
from dealscore.synthetic.simulation import Run
from dealscore.synthetic.world import World, ids


def timestamps(start: pd.Timestamp, days: np.ndarray) -> pd.Series:
    """Float days since start as microsecond UTC timestamps (NaN stays NaT)."""
    micros = np.round(np.asarray(days, dtype=float) * 86_400e6)
    ok = np.isfinite(micros)
    values = np.where(ok, micros, 0).astype(np.int64) + start.value // 1000
    out = pd.Series(values.astype("datetime64[us]")).dt.tz_localize("UTC")
    return out.where(ok).astype(TIMESTAMP_DTYPE)


def labels(categories: np.ndarray | pd.Series, codes: np.ndarray) -> pd.Series:
    """A string column from integer codes (-1 is missing), with no Python object per row."""
    return pd.Series(pd.Categorical.from_codes(codes, categories=categories)).astype("str")


def forecast_table(reps: pd.DataFrame, opp_ids: pd.Series, start: pd.Timestamp) -> pd.DataFrame:
    """The reps' weekly calls as the contract's forecasts table."""
    return pd.DataFrame(
        {
            Forecasts.opportunity_id: labels(opp_ids, reps["deal"].to_numpy()),
            Forecasts.submitted_at: timestamps(start, reps["t"].to_numpy()),
            Forecasts.forecast_category: reps["forecast_category"].to_numpy(),
            Forecasts.probability: reps["probability"].to_numpy(),
            Forecasts.amount: reps["amount"].to_numpy(),
            Forecasts.period: reps["period"].to_numpy(),
        }
    )


def truth_tables(
    deals: Deals,
    run: Run,
    eventual: np.ndarray,
    opp_ids: pd.Series,
    outcome: np.ndarray,
    won: np.ndarray,
    closed: np.ndarray,
    start: pd.Timestamp,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(what the generator knows of each deal, each deal's hidden path): the truth files."""
    born = np.floor(deals.created).astype(np.int64)
    truth = pd.DataFrame(
        {
            OPPORTUNITY_ID: opp_ids,
            "p_win": eventual[born, deals.klass, deals.stage0, deals.health0].astype(float),
            "health0": GRID[deals.health0],
            "stage0": deals.stage0,
            "speed_class": deals.klass,
            "icp_fit": deals.icp_fit,
            "champion": deals.champion,
            "competition": deals.competition,
            "heroic": run.rescued & won,
            "eventual_status": outcome,
            "eventual_closed_at": timestamps(start, closed),
        }
    )
    path = pd.DataFrame(
        {
            OPPORTUNITY_ID: labels(opp_ids, run.path["deal"].to_numpy()),
            "t": timestamps(start, run.path["t"].to_numpy()),
            "health": GRID[run.path["health"].to_numpy()],
            "stage": run.path["stage"].to_numpy(),
            "event": labels(EVENT_NAMES, run.path["event"].to_numpy()),
        }
    )
    return truth, path


def deal_tables(
    deals: Deals,
    closed: np.ndarray,
    outcome: np.ndarray,
    loss_reason: np.ndarray,
    events: pd.DataFrame,
    world: World,
    opp_ids: pd.Series,
    start: pd.Timestamp,
    horizon: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Opportunities (current state at the export) and the stage history before the export."""
    is_open = closed >= horizon
    history = events[events["t"] < horizon]
    current = history.drop_duplicates("deal", keep="last").set_index("deal")
    stage_names = np.array([*STAGES, CLOSED_WON, CLOSED_LOST])
    opportunities = pd.DataFrame(
        {
            Opportunities.opportunity_id: opp_ids,
            # "Acme Systems - analytics": how a CRM's deal names usually read.
            Opportunities.name: (
                world.accounts[Accounts.name].to_numpy()[deals.account].astype(str)
                + " - "
                + np.array(list(PRODUCTS))[deals.product]
            ).astype(object),
            Opportunities.created_at: timestamps(start, deals.created),
            Opportunities.status: np.where(is_open, Status.OPEN.value, outcome),
            Opportunities.closed_at: timestamps(start, np.where(is_open, np.nan, closed)),
            Opportunities.account_id: world.accounts["account_id"].to_numpy()[deals.account],
            Opportunities.owner_id: world.rep_ids.to_numpy()[deals.owner],
            Opportunities.amount: current["amount"].to_numpy(),
            Opportunities.close_date: timestamps(start, current["close_day"].to_numpy()),
            Opportunities.stage: stage_names[current["stage"].to_numpy()],
            Opportunities.product: np.array(list(PRODUCTS))[deals.product],
            Opportunities.lead_source: np.array(list(LEAD_SOURCE_EFFECT))[deals.lead_source],
            Opportunities.deal_type: np.array(list(DEAL_TYPE_EFFECT))[deals.deal_type],
            Opportunities.loss_reason: pd.Series(
                np.where(is_open, np.array(None, dtype=object), loss_reason.astype(object))
            ).astype("str"),
        }
    )
    return opportunities, stage_history_table(history, opp_ids, stage_names, start)


def stage_history_table(
    history: pd.DataFrame, opp_ids: pd.Series, stage_names: np.ndarray, start: pd.Timestamp
) -> pd.DataFrame:
    """The recorded stage changes as the contract's stage history, with each stage's default
    forecast category and probability."""
    stage_code = history["stage"].to_numpy()
    is_closing = stage_code >= len(STAGES)
    open_stage = np.minimum(stage_code, len(STAGES) - 1)
    return pd.DataFrame(
        {
            StageHistory.opportunity_id: labels(opp_ids, history["deal"].to_numpy()),
            StageHistory.changed_at: timestamps(start, history["t"].to_numpy()),
            StageHistory.stage: labels(stage_names, stage_code),
            StageHistory.amount: history["amount"].to_numpy(),
            StageHistory.close_date: timestamps(start, history["close_day"].to_numpy()),
            StageHistory.forecast_category: np.where(
                is_closing,
                np.where(stage_code == len(STAGES), "closed", "omitted"),
                STAGE_FORECAST[open_stage],
            ),
            StageHistory.probability: np.where(
                is_closing, (stage_code == len(STAGES)).astype(float), STAGE_PROBABILITY[open_stage]
            ),
        }
    )


def activity_table(
    acts: pd.DataFrame, world: World, opp_ids: pd.Series, start: pd.Timestamp
) -> pd.DataFrame:
    """Activities in time order, with string ids built from integer codes."""
    return pd.DataFrame(
        {
            Activities.activity_id: ids("ACT", len(acts), 9),
            Activities.occurred_at: timestamps(start, acts["t"].to_numpy()),
            Activities.type: labels(ACTIVITY_TYPES, acts["type"].to_numpy()),
            Activities.opportunity_id: labels(opp_ids, acts["deal"].to_numpy()),
            Activities.account_id: labels(world.accounts["account_id"], acts["account"].to_numpy()),
            Activities.contact_id: labels(world.contact_ids, acts["contact"].to_numpy()),
            Activities.direction: labels(DIRECTIONS, acts["direction"].to_numpy()),
            Activities.created_at: timestamps(start, acts["created"].to_numpy()),
        }
    )
