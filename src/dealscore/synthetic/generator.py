"""A realistic synthetic CRM: all seven contract tables plus a truth file (docs/synthetic.md)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from dealscore.progress import Progress, silent
from dealscore.schemas.tables import (
    TIMESTAMP_DTYPE,
    Activities,
    CrmTables,
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
    WON,
    Calendar,
    Deals,
    draw_deals,
    stage_events,
)
from dealscore.synthetic.engagement import ACTIVITY_TYPES, DIRECTIONS, activities, forecasts
from dealscore.synthetic.world import World, build_world, ids

# Status by outcome code (deals.LOST, WON, NO_DECISION = 0, 1, 2).
STATUS_NAMES = np.array([Status.LOST.value, Status.WON.value, Status.NO_DECISION.value])


@dataclass(frozen=True)
class GeneratorSettings:
    """The knobs of the generative story; the same settings and seed give the same CRM."""

    deals: int = 20_000
    seed: int = 0
    export_date: pd.Timestamp | None = None  # the export's "now"; jobs default it to today
    years: float = 3.0
    deals_per_account: float = 6.0
    deals_per_rep: float = 250.0
    activities_per_deal: float = 20.0
    heroic_share: float = 0.03
    path_fidelity: float = 0.75  # chance a deal's visible path is the one its outcome would give
    yearly_growth: float = 0.3
    # Days a lost or no-decision deal stays open in the CRM after its last touch (0.5x to 1.5x
    # this, uniformly) before someone closes it: fast wins, slow losses, as in many lead funnels.
    loss_close_lag_days: float = 0.0

    def __post_init__(self) -> None:
        if self.deals < 10:
            raise ValueError(f"deals must be at least 10, got {self.deals}")
        if self.years <= 0:
            raise ValueError(f"years must be positive, got {self.years}")
        if not 0 <= self.heroic_share < 0.5:
            raise ValueError(f"heroic_share must be in [0, 0.5), got {self.heroic_share}")
        if self.loss_close_lag_days < 0:
            raise ValueError(f"loss_close_lag_days must be >= 0, got {self.loss_close_lag_days}")
        if not 0 <= self.path_fidelity <= 1:
            raise ValueError(f"path_fidelity must be in [0, 1], got {self.path_fidelity}")
        if self.export_date is not None:
            stamp = pd.Timestamp(self.export_date)
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
            object.__setattr__(self, "export_date", stamp)


@dataclass(frozen=True)
class SyntheticCrm:
    tables: CrmTables
    truth: pd.DataFrame  # per deal: latent win probability and more; never read by the pipeline


def _timestamps(start: pd.Timestamp, days: np.ndarray) -> pd.Series:
    """Float days since start as microsecond UTC timestamps (NaN stays NaT)."""
    micros = np.round(np.asarray(days, dtype=float) * 86_400e6)
    ok = np.isfinite(micros)
    values = np.where(ok, micros, 0).astype(np.int64) + start.value // 1000
    out = pd.Series(values.astype("datetime64[us]")).dt.tz_localize("UTC")
    return out.where(ok).astype(TIMESTAMP_DTYPE)


def _labels(categories: np.ndarray | pd.Series, codes: np.ndarray) -> pd.Series:
    """A string column from integer codes (-1 is missing), with no Python object per row."""
    return pd.Series(pd.Categorical.from_codes(codes, categories=categories)).astype("str")


def ceiling_probability(deals: Deals, fidelity: float) -> np.ndarray:
    """P(won | p_win, path): all the visible history can tell (deals.py). Heroic wins are set to 1,
    as their late deep discount gives them away by the close."""
    looks_won = deals.path == WON
    p = np.where(looks_won, fidelity + (1 - fidelity) * deals.p_win, (1 - fidelity) * deals.p_win)
    return np.where(deals.heroic, 1.0, p)


def generate_crm(settings: GeneratorSettings, progress: Progress = silent) -> SyntheticCrm:
    """Draw a whole CRM export as of `settings.export_date`; vectorised throughout.

    Each intermediate becomes its contract table as soon as it is drawn and is then dropped,
    which keeps 1M deals (about 20M activities) within a few GiB.
    """
    if settings.export_date is None:
        raise ValueError("GeneratorSettings.export_date is required: the export's 'now'")
    rng = np.random.default_rng(settings.seed)
    horizon = settings.years * 365.0
    start = (settings.export_date - pd.Timedelta(days=horizon)).floor("D")
    horizon = (settings.export_date - start) / pd.Timedelta(days=1)
    calendar = Calendar.build(start, horizon)
    n = settings.deals
    progress(f"accounts, reps and contacts for {n:,} deals")
    world = build_world(
        rng,
        n_accounts=max(20, int(n / settings.deals_per_account)),
        n_reps=max(8, int(n / settings.deals_per_rep)),
        start=start,
    )
    deals = draw_deals(
        rng,
        world,
        n,
        horizon,
        calendar,
        settings.heroic_share,
        settings.yearly_growth,
        settings.path_fidelity,
    )
    opp_ids = ids("OPP", n, 8)

    progress("stage history: stages, regressions, slips, discounts")
    events = stage_events(rng, deals, start, calendar)
    # Losses closed late: engagement and stage history end at the real end (silence after it);
    # only the closing row and the deal's closed_at move. No draw at lag 0 (same CRM as before).
    recorded = deals
    if settings.loss_close_lag_days > 0:
        lag = settings.loss_close_lag_days * rng.uniform(0.5, 1.5, n) * (deals.outcome != WON)
        recorded = replace(deals, closed=deals.closed + lag)
        closing = events["stage"].to_numpy() >= len(STAGES)
        events.loc[closing, "t"] = recorded.closed[events.loc[closing, "deal"].to_numpy()]
    opportunities, stage_history = _deal_tables(recorded, events, world, opp_ids, start, horizon)

    progress("activities")
    acts = activities(rng, deals, world, horizon, settings.activities_per_deal)
    activity_frame = _activity_table(acts, world, opp_ids, start)
    del acts

    progress(f"weekly rep forecasts ({len(activity_frame):,} activities)")
    reps = forecasts(rng, deals, world, events, start, horizon, calendar)
    del events
    forecast_frame = pd.DataFrame(
        {
            Forecasts.opportunity_id: _labels(opp_ids, reps["deal"].to_numpy()),
            Forecasts.submitted_at: _timestamps(start, reps["t"].to_numpy()),
            Forecasts.forecast_category: reps["forecast_category"].to_numpy(),
            Forecasts.probability: reps["probability"].to_numpy(),
            Forecasts.amount: reps["amount"].to_numpy(),
            Forecasts.period: reps["period"].to_numpy(),
        }
    )
    del reps

    truth = pd.DataFrame(
        {
            "opportunity_id": opp_ids,
            "p_win": deals.p_win,
            "icp_fit": deals.icp_fit,
            "champion": deals.champion,
            "competition": deals.competition,
            "engagement": deals.engagement,
            "heroic": deals.heroic,
            "path": STATUS_NAMES[deals.path],
            "p_ceiling": ceiling_probability(deals, settings.path_fidelity),
            "eventual_status": STATUS_NAMES[deals.outcome],
            "eventual_closed_at": _timestamps(start, recorded.closed),
        }
    )
    tables = CrmTables(
        opportunities=opportunities,
        accounts=world.accounts.assign(
            created_at=lambda f: f["created_at"].astype(TIMESTAMP_DTYPE)
        ),
        stage_history=stage_history,
        activities=activity_frame,
        contacts=world.contacts,
        forecasts=forecast_frame,
        owners=world.owners.assign(hired_at=lambda f: f["hired_at"].astype(TIMESTAMP_DTYPE)),
    )
    return SyntheticCrm(tables, truth)


def _deal_tables(
    deals: Deals,
    events: pd.DataFrame,
    world: World,
    opp_ids: pd.Series,
    start: pd.Timestamp,
    horizon: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Opportunities (current state at the export) and the stage history before the export."""
    is_open = deals.closed >= horizon
    history = events[events["t"] < horizon]
    current = history.drop_duplicates("deal", keep="last").set_index("deal")
    stage_names = np.array([*STAGES, CLOSED_WON, CLOSED_LOST])
    opportunities = pd.DataFrame(
        {
            Opportunities.opportunity_id: opp_ids,
            Opportunities.created_at: _timestamps(start, deals.created),
            Opportunities.status: np.where(is_open, Status.OPEN.value, STATUS_NAMES[deals.outcome]),
            Opportunities.closed_at: _timestamps(start, np.where(is_open, np.nan, deals.closed)),
            Opportunities.account_id: world.accounts["account_id"].to_numpy()[deals.account],
            Opportunities.owner_id: world.rep_ids.to_numpy()[deals.owner],
            Opportunities.amount: current["amount"].to_numpy(),
            Opportunities.close_date: _timestamps(start, current["close_day"].to_numpy()),
            Opportunities.stage: stage_names[current["stage"].to_numpy()],
            Opportunities.product: np.array(list(PRODUCTS))[deals.product],
            Opportunities.lead_source: np.array(list(LEAD_SOURCE_EFFECT))[deals.lead_source],
            Opportunities.deal_type: np.array(list(DEAL_TYPE_EFFECT))[deals.deal_type],
            Opportunities.loss_reason: pd.Series(np.where(is_open, None, deals.loss_reason)).astype(
                "str"
            ),
        }
    )
    stage_code = history["stage"].to_numpy()
    is_closing = stage_code >= len(STAGES)
    open_stage = np.minimum(stage_code, len(STAGES) - 1)
    stage_history = pd.DataFrame(
        {
            StageHistory.opportunity_id: _labels(opp_ids, history["deal"].to_numpy()),
            StageHistory.changed_at: _timestamps(start, history["t"].to_numpy()),
            StageHistory.stage: _labels(stage_names, stage_code),
            StageHistory.amount: history["amount"].to_numpy(),
            StageHistory.close_date: _timestamps(start, history["close_day"].to_numpy()),
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
    return opportunities, stage_history


def _activity_table(
    acts: pd.DataFrame, world: World, opp_ids: pd.Series, start: pd.Timestamp
) -> pd.DataFrame:
    """Activities in time order, with string ids built from integer codes."""
    return pd.DataFrame(
        {
            Activities.activity_id: ids("ACT", len(acts), 9),
            Activities.occurred_at: _timestamps(start, acts["t"].to_numpy()),
            Activities.type: _labels(ACTIVITY_TYPES, acts["type"].to_numpy()),
            Activities.opportunity_id: _labels(opp_ids, acts["deal"].to_numpy()),
            Activities.account_id: _labels(
                world.accounts["account_id"], acts["account"].to_numpy()
            ),
            Activities.contact_id: _labels(world.contact_ids, acts["contact"].to_numpy()),
            Activities.direction: _labels(DIRECTIONS, acts["direction"].to_numpy()),
        }
    )


__all__ = ["GeneratorSettings", "SyntheticCrm", "generate_crm"]
