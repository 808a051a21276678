"""A realistic synthetic CRM: all seven contract tables plus a truth file (docs/synthetic.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pydantic.dataclasses

from dealscore.progress import Progress, silent
from dealscore.schemas.tables import (
    TIMESTAMP_DTYPE,
    CrmTables,
    Status,
    utc,
)
from dealscore.settings import SETTINGS, UtcTime
from dealscore.synthetic.deals import (
    LOSS_REASONS,
    StageRecorder,
    draw_deals,
)
from dealscore.synthetic.engagement import (
    RepKnobs,
    activities,
    forecasts,
)
from dealscore.synthetic.export_tables import (
    activity_table,
    deal_tables,
    forecast_table,
    truth_tables,
)
from dealscore.synthetic.process import (
    CLOSE_HOURS,
    EVENT_NAMES,
    Calendar,
    Chain,
)
from dealscore.synthetic.process import CLOSED_LOST as LOST_CODE
from dealscore.synthetic.process import CLOSED_WON as WON_CODE
from dealscore.synthetic.simulation import Run, simulate
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
    opportunities, stage_history = deal_tables(
        deals, closed, outcome, loss_reason, events, world, opp_ids, start, horizon
    )

    progress("activities")
    acts = activities(rng, deals, world, run.path, horizon, settings.activities_per_deal)
    activity_frame = activity_table(acts, world, opp_ids, start)
    del acts

    progress(f"weekly rep forecasts ({len(activity_frame):,} activities)")
    eventual = chain.eventual()
    knobs = RepKnobs(settings.rep_optimism, settings.rep_noise, settings.rep_icp_blindness)
    reps = forecasts(
        rng, deals, world, run.path, events, decided, horizon, chain.calendar, eventual, knobs
    )
    del events
    forecast_frame = forecast_table(reps, opp_ids, start)
    del reps

    truth, path = truth_tables(deals, run, eventual, opp_ids, outcome, won, closed, start)
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


def _had_event(path: pd.DataFrame, n: int, name: str) -> np.ndarray:
    code = int(np.flatnonzero(name == EVENT_NAMES)[0])
    hit = np.zeros(n, dtype=bool)
    hit[path.loc[path["event"].to_numpy() == code, "deal"].to_numpy()] = True
    return hit


__all__ = ["DEFAULT_EXPORT_DATE", "GeneratorSettings", "SyntheticCrm", "generate_crm"]
