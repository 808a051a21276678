"""Synthetic deals: what is fixed at creation, and the stage history drawn as the deal runs.

Times are float days since the history start; the generator turns them into timestamps. A deal's
starting health comes from the hidden ICP, its lead source and type, the rep's skill, a champion
and competition; from then on the forward process (process.py) moves it, and the stage history
(`StageRecorder`) is drawn day by day from the deal's current state, never from its outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dealscore.synthetic.process import (
    CYCLE_DAYS,
    GRID,
    N_STAGES,
    RENEWAL_SPEED,
    RESCUE,
    Calendar,
    health_index,
    sigmoid,
    speed_class,
)
from dealscore.synthetic.simulation import DayState
from dealscore.synthetic.world import World, size_band

STAGES = ["prospecting", "qualification", "discovery", "proposal", "negotiation"]
STAGE_PROBABILITY = np.array([0.10, 0.20, 0.40, 0.60, 0.80])
STAGE_FORECAST = np.array(["pipeline", "pipeline", "pipeline", "best_case", "commit"])
CLOSED_WON, CLOSED_LOST = "closed_won", "closed_lost"
LATE_STAGE = 3  # proposal
WON_ROW, LOST_ROW = 5, 6  # stage codes of the closing row in the stage events

PRODUCTS = {
    "core": 24_000.0,
    "analytics": 38_000.0,
    "platform": 95_000.0,
    "add_on": 7_500.0,
    "services": 14_000.0,
}
PRODUCT_SHARE = np.array([0.35, 0.2, 0.1, 0.2, 0.15])
LEAD_SOURCE_EFFECT = {
    "inbound": 0.4,
    "referral": 0.6,
    "partner": 0.2,
    "event": 0.0,
    "outbound": -0.35,
}
LEAD_SOURCE_SHARE = np.array([0.3, 0.1, 0.12, 0.13, 0.35])
DEAL_TYPE_EFFECT = {"new_business": 0.0, "expansion": 0.8, "renewal": 1.4}
DEAL_TYPE_SHARE = np.array([0.65, 0.25, 0.10])
LOSS_REASONS = np.array(["competitor", "price", "no_budget", "timing", "product_fit"])
# A deal created straight at proposal has usually been brought in to make up the numbers.
LATE_ENTRY_PENALTY = 1.6
HEALTH_OFFSET = -0.6


@dataclass(frozen=True)
class Deals:
    """What is fixed when each deal is created; index i is deal i."""

    created: np.ndarray
    account: np.ndarray
    owner: np.ndarray
    product: np.ndarray
    lead_source: np.ndarray
    deal_type: np.ndarray
    amount0: np.ndarray
    champion: np.ndarray
    competition: np.ndarray
    icp_fit: np.ndarray
    health0: np.ndarray  # grid index
    stage0: np.ndarray
    klass: np.ndarray  # speed class (process.speed_class)

    @property
    def n(self) -> int:
        return len(self.created)


def _created_days(rng: np.random.Generator, n: int, horizon: float, growth: float) -> np.ndarray:
    """Creation times over the history, denser later: the business grows `growth` a year."""
    g = np.log1p(growth) / 365.0
    u = rng.random(n)
    return np.log1p(u * np.expm1(g * horizon)) / g


def draw_deals(
    rng: np.random.Generator, world: World, n: int, horizon: float, growth: float = 0.3
) -> Deals:
    n_accounts = len(world.icp_fit)
    employees = world.accounts["employees"].to_numpy()
    weight = employees**0.3
    account = rng.choice(n_accounts, n, p=weight / weight.sum())
    region = world.region_code[account]
    # The owner is a rep of the account's region.
    owner = np.empty(n, dtype=np.int64)
    for code, reps in enumerate(world.reps_by_region):
        here = region == code
        owner[here] = reps[rng.integers(0, len(reps), here.sum())]
    product = rng.choice(len(PRODUCTS), n, p=PRODUCT_SHARE)
    lead_source = rng.choice(len(LEAD_SOURCE_EFFECT), n, p=LEAD_SOURCE_SHARE)
    deal_type = rng.choice(len(DEAL_TYPE_EFFECT), n, p=DEAL_TYPE_SHARE)
    band = size_band(employees[account])

    icp = world.icp_fit[account]
    champion = rng.normal(0.0, 1.0, n)
    competition = rng.random(n) < 0.45
    late_entry = rng.random(n) < np.where(competition, 0.12, 0.03)
    stage0 = np.where(late_entry, LATE_STAGE, np.where(rng.random(n) < 0.16, 1, 0))
    health = (
        HEALTH_OFFSET
        + 1.0 * icp
        + 0.7 * champion
        - 0.6 * competition
        + world.owner_skill[owner]
        + np.array(list(LEAD_SOURCE_EFFECT.values()))[lead_source]
        + np.array(list(DEAL_TYPE_EFFECT.values()))[deal_type]
        - LATE_ENTRY_PENALTY * late_entry
        + rng.normal(0.0, 0.5, n)
    )
    amount0 = (
        np.array(list(PRODUCTS.values()))[product] * (1 + band) ** 0.6 * rng.lognormal(0.0, 0.35, n)
    ).round(-2)
    return Deals(
        created=_created_days(rng, n, horizon, growth),
        account=account,
        owner=owner,
        product=product,
        lead_source=lead_source,
        deal_type=deal_type,
        amount0=amount0,
        champion=champion,
        competition=competition,
        icp_fit=icp,
        health0=health_index(health),
        stage0=stage0.astype(np.int8),
        klass=speed_class(band, deal_type == 2),
    )


def month_end(start: pd.Timestamp, days: np.ndarray) -> np.ndarray:
    """Reps like month ends: snap a day to the end of its month."""
    ts = start + pd.to_timedelta(days, unit="D")
    ends = (ts + pd.offsets.MonthEnd(0)).normalize()
    return np.asarray((ends - start) / pd.Timedelta(days=1), dtype=float)


def expected_cycle(deals: Deals) -> np.ndarray:
    """The cycle a rep expects for a deal of this size and type (the process's own scale)."""
    band, renewal = deals.klass // 2, deals.klass % 2
    return CYCLE_DAYS[band] * np.where(renewal == 1, RENEWAL_SPEED, 1.0)


class StageRecorder:
    """Draws the CRM's stage history from each day's state: stage moves, amounts, close dates.

    Rows are (deal, t, stage, amount, close_day); a deal's first row is complete, later rows
    carry only what changed (NaN elsewhere). Nothing is recorded from `until` on.
    """

    def __init__(
        self, rng: np.random.Generator, deals: Deals, calendar: Calendar, until: float
    ) -> None:
        self.rng, self.calendar, self.until = rng, calendar, until
        n = deals.n
        # Planned close date: optimistic, often a month end.
        planned = deals.created + expected_cycle(deals) * rng.uniform(0.6, 1.2, n)
        planned = np.where(
            rng.random(n) < 0.5, month_end(calendar.start, planned), np.floor(planned)
        )
        self.planned = planned
        self.amount = deals.amount0.astype(float).copy()
        self.crm_stage = deals.stage0.astype(np.int8).copy()
        self.parts: list[dict[str, np.ndarray]] = [
            {
                "deal": np.arange(n),
                "t": deals.created,
                "stage": deals.stage0.astype(float),
                "amount": self.amount.copy(),
                "close_day": planned.copy(),
            }
        ]

    def _add(self, deal: np.ndarray, t: np.ndarray, **values: np.ndarray) -> None:
        if not len(deal):
            return
        nan = np.full(len(deal), np.nan)
        self.parts.append(
            {
                "deal": deal,
                "t": t,
                "stage": values.get("stage", nan),
                "amount": values.get("amount", nan),
                "close_day": values.get("close_day", nan),
            }
        )

    def __call__(self, today: DayState) -> None:
        if today.day >= self.until:
            return
        rng, day = self.rng, today.day
        open_ = today.ends == 0
        deal, h = today.deals[open_], GRID[today.health[open_]]
        before, after = today.stage_before[open_], today.stage[open_]
        k = len(deal)
        t = day + rng.uniform(0.35, 0.75, k)
        moved = (after != before) & (after != RESCUE)
        shown = np.minimum(after, N_STAGES - 1)
        self._add(deal[moved], t[moved], stage=shown[moved].astype(float))
        self.crm_stage[deal[moved]] = shown[moved]

        # Amounts: upsizing on reaching discovery, discounts on reaching negotiation, and a
        # deep discount when a losing deal is rescued at a quarter's end.
        up = moved & (after == 2) & (before < after) & (rng.random(k) < 0.12)
        self.amount[deal[up]] = (self.amount[deal[up]] * rng.uniform(1.1, 1.4, up.sum())).round(-2)
        discount = moved & (after == N_STAGES - 1) & (rng.random(k) < 0.1 + 0.3 * sigmoid(h))
        depth = rng.uniform(0.8, 0.95, k)
        rescue = (after == RESCUE) & (before != RESCUE)
        depth = np.where(rescue, rng.uniform(0.6, 0.75, k), depth)
        cut = discount | rescue
        self.amount[deal[cut]] = (self.amount[deal[cut]] * depth[cut]).round(-2)
        changed = up | cut
        self._add(deal[changed], t[changed] + 0.01, amount=self.amount[deal[changed]])

        # Close dates: pushed out when they pass, when news is bad, and to the next quarter's
        # first days when a rescue is offered.
        planned = self.planned[deal]
        overdue = planned < day
        bad_news = rng.random(k) < 0.04 * sigmoid(-1.5 * h - 1.0)
        push = rng.uniform(14.0, 45.0, k)
        new = np.where(overdue, np.floor(day + push), np.floor(planned + push))
        next_quarter = self.calendar.next_boundary(np.full(k, float(day)))
        # Reps like to land a pushed deal "this quarter" while there is room for it.
        quarter_last = next_quarter - 1
        this_quarter = (rng.random(k) < 0.4) & (quarter_last >= day + 5)
        new = np.where(this_quarter, np.minimum(new, quarter_last), new)
        new = np.where(rescue, next_quarter + rng.integers(1, 8, k), new)
        slip = overdue | bad_news | rescue
        self.planned[deal[slip]] = new[slip]
        self._add(deal[slip], t[slip] + 0.02, close_day=new[slip])

    def events(self, closed: np.ndarray, won: np.ndarray) -> pd.DataFrame:
        """All rows, the closing row included, sorted and forward filled (the stage as int8)."""
        n = len(closed)
        self._add(
            np.arange(n),
            closed,
            stage=np.where(won, WON_ROW, LOST_ROW).astype(float),
            amount=self.amount.copy(),
            close_day=np.floor(closed),
        )
        events = pd.DataFrame(
            {key: np.concatenate([p[key] for p in self.parts]) for key in self.parts[0]}
        )
        self.parts = []
        events["deal"] = events["deal"].astype(np.int32)
        events = events.sort_values(["deal", "t"], kind="stable", ignore_index=True)
        # Each deal's first row is complete, so a plain forward fill never crosses deals.
        events[["stage", "amount", "close_day"]] = events[["stage", "amount", "close_day"]].ffill()
        events["stage"] = events["stage"].astype(np.int8)
        return events
