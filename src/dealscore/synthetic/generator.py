"""A realistic synthetic CRM: all seven contract tables plus a truth file (docs/synthetic.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pydantic.dataclasses

from dealscore.progress import Progress, silent
from dealscore.schemas.tables import (
    TIMESTAMP_DTYPE,
    Accounts,
    Activities,
    CrmTables,
    Forecasts,
    Opportunities,
    StageHistory,
    Status,
    utc,
)
from dealscore.settings import SETTINGS, UtcTime
from dealscore.synthetic.deals import (
    CLOSED_LOST,
    CLOSED_WON,
    DEAL_TYPE_EFFECT,
    LEAD_SOURCE_EFFECT,
    LOSS_REASONS,
    PRODUCTS,
    STAGE_FORECAST,
    STAGE_PROBABILITY,
    STAGES,
    Deals,
    StageRecorder,
    draw_deals,
)
from dealscore.synthetic.engagement import (
    ACTIVITY_TYPES,
    DIRECTIONS,
    RepKnobs,
    activities,
    forecasts,
)
from dealscore.synthetic.process import (
    CLOSE_HOURS,
    EVENT_NAMES,
    GRID,
    Calendar,
    Chain,
    Run,
    simulate,
)
from dealscore.synthetic.process import CLOSED_LOST as LOST_CODE
from dealscore.synthetic.process import CLOSED_WON as WON_CODE
from dealscore.synthetic.world import World, build_world, ids

# The command line's export date when none is given: the documented demo's, so the figures in
# the docs reproduce from the commands they quote (not "today", which moves every day).
DEFAULT_EXPORT_DATE = "2026-11-30"


@pydantic.dataclasses.dataclass(frozen=True, config=SETTINGS)
class GeneratorSettings:
    """The knobs of the generative story; the same settings and seed give the same CRM."""

    deals: int = 20_000
    seed: int = 0
    export_date: UtcTime | None = None  # the export's "now"; the CLI: DEFAULT_EXPORT_DATE
    years: float = 3.0
    deals_per_account: float = 6.0
    deals_per_rep: float = 250.0
    activities_per_deal: float = 20.0
    # Chance per day, in a quarter's last days, that a failing deal in negotiation is rescued
    # by a deep discount and signs in the next quarter's first days.
    heroic_rescue: float = 0.045
    quarter_end_pull: float = 2.5  # won hazard multiplier in a quarter's last week
    yearly_growth: float = 0.3
    # Days a lost or no-decision deal stays open in the CRM after its last touch (0.5x to 1.5x
    # this, uniformly) before someone closes it: fast wins, slow losses, as in many lead funnels.
    loss_close_lag_days: float = 0.0
    # How reps read their deals (engagement.RepKnobs; docs/synthetic.md).
    rep_optimism: float = 0.9
    rep_noise: float = 0.6
    rep_icp_blindness: float = 1.0
    rep_sandbagger_share: float = 0.15

    def __post_init__(self) -> None:
        if self.deals < 10:
            raise ValueError(f"deals must be at least 10, got {self.deals}")
        if self.years <= 0:
            raise ValueError(f"years must be positive, got {self.years}")
        if not 0 <= self.heroic_rescue < 1:
            raise ValueError(f"heroic_rescue must be in [0, 1), got {self.heroic_rescue}")
        if self.quarter_end_pull <= 0:
            raise ValueError(f"quarter_end_pull must be positive, got {self.quarter_end_pull}")
        if self.loss_close_lag_days < 0:
            raise ValueError(f"loss_close_lag_days must be >= 0, got {self.loss_close_lag_days}")
        if self.rep_noise < 0:
            raise ValueError(f"rep_noise must be >= 0, got {self.rep_noise}")
        if not 0 <= self.rep_icp_blindness <= 1:
            raise ValueError(f"rep_icp_blindness must be in [0, 1], got {self.rep_icp_blindness}")
        if not 0 <= self.rep_sandbagger_share <= 1:
            raise ValueError(
                f"rep_sandbagger_share must be in [0, 1], got {self.rep_sandbagger_share}"
            )
        if self.export_date is not None:
            object.__setattr__(self, "export_date", utc(self.export_date))

    @property
    def start(self) -> pd.Timestamp:
        """The history's first day (day 0 of the forward process)."""
        if self.export_date is None:
            raise ValueError("GeneratorSettings.export_date is required: the export's 'now'")
        return (self.export_date - pd.Timedelta(days=self.years * 365.0)).floor("D")

    @property
    def horizon(self) -> float:
        """Days from the history start to the export."""
        return float((self.export_date - self.start) / pd.Timedelta(days=1))

    def chain(self) -> Chain:
        """The forward process: its calendar runs AFTER_EXPORT_DAYS past the export."""
        days = int(np.ceil(self.horizon)) + AFTER_EXPORT_DAYS
        return Chain(Calendar.build(self.start, days), self.heroic_rescue, self.quarter_end_pull)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = asdict(self)
        out["export_date"] = None if self.export_date is None else self.export_date.isoformat()
        return out


# Deals still open this long after the export are closed as no decision (the CRM's cleanup).
AFTER_EXPORT_DAYS = 1100


@dataclass(frozen=True)
class SyntheticCrm:
    tables: CrmTables
    truth: pd.DataFrame  # per deal: its hidden drivers and how it ends; never read by the pipeline
    path: pd.DataFrame  # per deal: every change of its hidden state (process.py)


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


def generate_crm(settings: GeneratorSettings, progress: Progress = silent) -> SyntheticCrm:
    """Draw a whole CRM export as of `settings.export_date`, running every deal forward in time.

    Each intermediate becomes its contract table as soon as it is drawn and is then dropped,
    which keeps 1M deals (about 20M activities) within a few GiB.
    """
    rng = np.random.default_rng(settings.seed)
    start, horizon = settings.start, settings.horizon
    chain = settings.chain()
    n = settings.deals
    progress(f"accounts, reps and contacts for {n:,} deals")
    world = _world(rng, settings)
    deals = draw_deals(rng, world, n, horizon, settings.yearly_growth)
    opp_ids = ids("OPP", n, 8)

    progress("running the deals forward in time: health, stages, closes and the stage history")
    recorder = StageRecorder(rng, deals, chain.calendar, horizon)
    run = simulate(rng, chain, deals.created, deals.health0, deals.stage0, deals.klass, recorder)
    won = run.outcome == WON_CODE
    decided = run.outcome_day.astype(float)
    closed = _closes(rng, decided, won, settings.loss_close_lag_days)
    events = recorder.events(closed, won)
    del recorder
    outcome, loss_reason = _outcomes(rng, run, deals.competition, won)
    opportunities, stage_history = _deal_tables(
        deals, closed, outcome, loss_reason, events, world, opp_ids, start, horizon
    )

    progress("activities")
    acts = activities(rng, deals, world, run.path, horizon, settings.activities_per_deal)
    activity_frame = _activity_table(acts, world, opp_ids, start)
    del acts

    progress(f"weekly rep forecasts ({len(activity_frame):,} activities)")
    eventual = chain.eventual()
    knobs = RepKnobs(settings.rep_optimism, settings.rep_noise, settings.rep_icp_blindness)
    reps = forecasts(
        rng, deals, world, run.path, events, decided, horizon, chain.calendar, eventual, knobs
    )
    del events
    forecast_frame = _forecast_table(reps, opp_ids, start)
    del reps

    truth, path = _truth(deals, run, eventual, opp_ids, outcome, won, closed, start)
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
    return SyntheticCrm(tables, truth, path)


def _world(rng: np.random.Generator, settings: GeneratorSettings) -> World:
    """Accounts, reps and contacts in proportion to the deals."""
    return build_world(
        rng,
        n_accounts=max(20, int(settings.deals / settings.deals_per_account)),
        n_reps=max(8, int(settings.deals / settings.deals_per_rep)),
        start=settings.start,
        sandbagger_share=settings.rep_sandbagger_share,
    )


def _closes(
    rng: np.random.Generator, decided: np.ndarray, won: np.ndarray, loss_lag_days: float
) -> np.ndarray:
    """When each close is recorded: later that day; losses may sit open for a while before
    someone closes them (activities, stage moves and calls stop at the real end)."""
    lo, hi = CLOSE_HOURS
    closed = decided + rng.uniform(lo, hi, len(decided))
    if loss_lag_days > 0:
        closed = closed + loss_lag_days * rng.uniform(0.5, 1.5, len(decided)) * ~won
    return closed


def _outcomes(
    rng: np.random.Generator, run: Run, competition: np.ndarray, won: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(each deal's status, its loss reason): a competitor's deals are mostly lost to it."""
    n = len(won)
    outcome = np.select(
        [won, run.outcome == LOST_CODE],
        [Status.WON.value, Status.LOST.value],
        Status.NO_DECISION.value,
    )
    competitor = _had_event(run.path, n, "competitor_entered") | competition
    reason = np.where(competitor & (rng.random(n) < 0.6), 0, rng.integers(1, len(LOSS_REASONS), n))
    loss_reason = np.select(
        [outcome == Status.LOST.value, outcome == Status.NO_DECISION.value],
        [LOSS_REASONS[reason], "no_decision"],
        np.array(None, dtype=object),
    )
    return outcome, loss_reason


def _forecast_table(reps: pd.DataFrame, opp_ids: pd.Series, start: pd.Timestamp) -> pd.DataFrame:
    """The reps' weekly calls as the contract's forecasts table."""
    return pd.DataFrame(
        {
            Forecasts.opportunity_id: _labels(opp_ids, reps["deal"].to_numpy()),
            Forecasts.submitted_at: _timestamps(start, reps["t"].to_numpy()),
            Forecasts.forecast_category: reps["forecast_category"].to_numpy(),
            Forecasts.probability: reps["probability"].to_numpy(),
            Forecasts.amount: reps["amount"].to_numpy(),
            Forecasts.period: reps["period"].to_numpy(),
        }
    )


def _truth(
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
            "opportunity_id": opp_ids,
            "p_win": eventual[born, deals.klass, deals.stage0, deals.health0].astype(float),
            "health0": GRID[deals.health0],
            "stage0": deals.stage0,
            "speed_class": deals.klass,
            "icp_fit": deals.icp_fit,
            "champion": deals.champion,
            "competition": deals.competition,
            "heroic": run.rescued & won,
            "eventual_status": outcome,
            "eventual_closed_at": _timestamps(start, closed),
        }
    )
    path = pd.DataFrame(
        {
            "opportunity_id": _labels(opp_ids, run.path["deal"].to_numpy()),
            "t": _timestamps(start, run.path["t"].to_numpy()),
            "health": GRID[run.path["health"].to_numpy()],
            "stage": run.path["stage"].to_numpy(),
            "event": _labels(EVENT_NAMES, run.path["event"].to_numpy()),
        }
    )
    return truth, path


def _had_event(path: pd.DataFrame, n: int, name: str) -> np.ndarray:
    code = int(np.flatnonzero(name == EVENT_NAMES)[0])
    hit = np.zeros(n, dtype=bool)
    hit[path.loc[path["event"].to_numpy() == code, "deal"].to_numpy()] = True
    return hit


def _deal_tables(
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
            Opportunities.created_at: _timestamps(start, deals.created),
            Opportunities.status: np.where(is_open, Status.OPEN.value, outcome),
            Opportunities.closed_at: _timestamps(start, np.where(is_open, np.nan, closed)),
            Opportunities.account_id: world.accounts["account_id"].to_numpy()[deals.account],
            Opportunities.owner_id: world.rep_ids.to_numpy()[deals.owner],
            Opportunities.amount: current["amount"].to_numpy(),
            Opportunities.close_date: _timestamps(start, current["close_day"].to_numpy()),
            Opportunities.stage: stage_names[current["stage"].to_numpy()],
            Opportunities.product: np.array(list(PRODUCTS))[deals.product],
            Opportunities.lead_source: np.array(list(LEAD_SOURCE_EFFECT))[deals.lead_source],
            Opportunities.deal_type: np.array(list(DEAL_TYPE_EFFECT))[deals.deal_type],
            Opportunities.loss_reason: pd.Series(
                np.where(is_open, np.array(None, dtype=object), loss_reason.astype(object))
            ).astype("str"),
        }
    )
    return opportunities, _stage_history_table(history, opp_ids, stage_names, start)


def _stage_history_table(
    history: pd.DataFrame, opp_ids: pd.Series, stage_names: np.ndarray, start: pd.Timestamp
) -> pd.DataFrame:
    """The recorded stage changes as the contract's stage history, with each stage's default
    forecast category and probability."""
    stage_code = history["stage"].to_numpy()
    is_closing = stage_code >= len(STAGES)
    open_stage = np.minimum(stage_code, len(STAGES) - 1)
    return pd.DataFrame(
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
            Activities.created_at: _timestamps(start, acts["created"].to_numpy()),
        }
    )


__all__ = ["DEFAULT_EXPORT_DATE", "GeneratorSettings", "SyntheticCrm", "generate_crm"]
