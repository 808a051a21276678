"""Synthetic deals: latent quality, outcomes and each deal's stage history.

Times are float days since the history start; the generator turns them into timestamps. Every
outcome is drawn from latent quality, never from the columns a model will see.

What a model can see (stages, slips, activities, forecasts) follows the deal's *path*, not its
outcome: with probability `path_fidelity` the path is the one the outcome would give, otherwise
an independent draw from the same latent probability. So the outcome depends on the visible
history only through (p_win, path), and P(won | p_win, path) is the ceiling no model can beat
(`p_ceiling` in the truth file; docs/synthetic.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dealscore.synthetic.world import World, size_band

STAGES = ["prospecting", "qualification", "discovery", "proposal", "negotiation"]
STAGE_PROBABILITY = np.array([0.10, 0.20, 0.40, 0.60, 0.80])
STAGE_FORECAST = np.array(["pipeline", "pipeline", "pipeline", "best_case", "commit"])
CLOSED_WON, CLOSED_LOST = "closed_won", "closed_lost"
LATE_STAGE = 3  # proposal

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
# Median sales cycle in days by employee band: bigger buyers take longer.
CYCLE_DAYS = np.array([30.0, 45.0, 70.0, 100.0, 140.0])
MAX_CYCLE_DAYS = 900.0
LOSS_REASONS = np.array(["competitor", "price", "no_budget", "timing", "product_fit"])

WON, LOST, NO_DECISION = 1, 0, 2


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Calendar:
    """Quarter boundaries in days since the history start, for quarter-end behaviour."""

    boundaries: np.ndarray  # day of each quarter's first instant, ascending
    labels: np.ndarray  # "2026Q3" for the quarter starting at each boundary

    @classmethod
    def build(cls, start: pd.Timestamp, horizon_days: float) -> Calendar:
        first = (start - pd.offsets.QuarterBegin(startingMonth=1)).normalize()
        quarters = pd.date_range(first, start + pd.Timedelta(days=horizon_days + 1500), freq="QS")
        days = (quarters - start) / pd.Timedelta(days=1)
        labels = np.array([f"{q.year}Q{q.quarter}" for q in quarters])
        return cls(np.asarray(days, dtype=float), labels)

    def index(self, days: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.boundaries, days, side="right") - 1

    def next_boundary(self, days: np.ndarray) -> np.ndarray:
        """Start of the next quarter (the end of the quarter each day falls in)."""
        return self.boundaries[self.index(days) + 1]


@dataclass(frozen=True)
class Deals:
    """Per-deal arrays; index i is deal i."""

    created: np.ndarray
    closed: np.ndarray
    account: np.ndarray
    owner: np.ndarray
    product: np.ndarray
    lead_source: np.ndarray
    deal_type: np.ndarray
    amount0: np.ndarray
    champion: np.ndarray
    competition: np.ndarray
    engagement: np.ndarray
    icp_fit: np.ndarray
    p_win: np.ndarray
    outcome: np.ndarray  # what happened: WON, LOST or NO_DECISION
    path: np.ndarray  # what the visible history looks like, in the same codes
    heroic: np.ndarray
    loss_reason: np.ndarray

    @property
    def n(self) -> int:
        return len(self.created)

    @property
    def duration(self) -> np.ndarray:
        return self.closed - self.created


def _created_days(rng: np.random.Generator, n: int, horizon: float, growth: float) -> np.ndarray:
    """Creation times over the history, denser later: the business grows `growth` a year."""
    g = np.log1p(growth) / 365.0
    u = rng.random(n)
    return np.log1p(u * np.expm1(g * horizon)) / g


def draw_deals(
    rng: np.random.Generator,
    world: World,
    n: int,
    horizon: float,
    calendar: Calendar,
    heroic_share: float,
    growth: float = 0.3,
    path_fidelity: float = 0.75,
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
    engagement = 0.6 * champion + 0.3 * icp + rng.normal(0.0, 0.8, n)
    logit = (
        -1.55
        + 1.0 * icp
        + 0.7 * champion
        - 0.8 * competition
        + world.owner_skill[owner]
        + np.array(list(LEAD_SOURCE_EFFECT.values()))[lead_source]
        + np.array(list(DEAL_TYPE_EFFECT.values()))[deal_type]
        + 0.35 * engagement
        + rng.normal(0.0, 0.3, n)
    )
    p_win = sigmoid(logit)
    # Not won: the status quo (no decision) wins when nobody champions the change.
    stall = sigmoid(-0.9 - 0.9 * champion - 0.6 * competition)

    def draw_outcome() -> np.ndarray:
        won = rng.random(n) < p_win
        no_decision = ~won & (rng.random(n) < stall)
        return np.where(won, WON, np.where(no_decision, NO_DECISION, LOST))

    outcome = draw_outcome()
    path = np.where(rng.random(n) < path_fidelity, outcome, draw_outcome())

    cycle = CYCLE_DAYS[band] * np.where(deal_type == 2, 0.6, 1.0) * rng.lognormal(0.0, 0.5, n)
    cycle *= np.select([path == LOST, path == NO_DECISION], [rng.uniform(0.4, 1.3, n), 1.6], 1.0)
    # The log-normal tail would let a rare deal run for a decade (and past the calendar).
    cycle = np.minimum(cycle, MAX_CYCLE_DAYS)
    created = _created_days(rng, n, horizon, growth)
    closed = created + np.maximum(cycle, 2.0)

    # Hockey stick: a third of deals that look won are pulled into the last days of a quarter.
    pull = (path == WON) & (rng.random(n) < 0.3)
    quarter_end = calendar.next_boundary(closed)
    target = quarter_end - rng.uniform(0.1, 6.0, n)
    pull &= (target > created + 3.0) & (target - closed < 25.0)
    closed = np.where(pull, target, closed)

    # Heroic wins: would-be losses outside the ICP, saved by a deep discount after being
    # dragged over a quarter end. A pattern not to learn from. Their path stays a losing one.
    heroic = np.zeros(n, dtype=bool)
    candidates = np.flatnonzero((outcome != WON) & (icp < np.quantile(icp, 0.4)))
    n_heroic = min(len(candidates), round(heroic_share * (outcome == WON).sum()))
    if n_heroic:
        chosen = rng.choice(candidates, n_heroic, replace=False)
        heroic[chosen] = True
        outcome[chosen] = WON
        closed[chosen] = calendar.next_boundary(closed[chosen]) + rng.uniform(0.5, 10.0, n_heroic)

    amount0 = (
        np.array(list(PRODUCTS.values()))[product] * (1 + band) ** 0.6 * rng.lognormal(0.0, 0.35, n)
    ).round(-2)
    reason = np.where(competition & (rng.random(n) < 0.6), 0, rng.integers(1, len(LOSS_REASONS), n))
    loss_reason = np.where(
        outcome == LOST, LOSS_REASONS[reason], np.where(outcome == NO_DECISION, "no_decision", None)
    )
    return Deals(
        created=created,
        closed=closed,
        account=account,
        owner=owner,
        product=product,
        lead_source=lead_source,
        deal_type=deal_type,
        amount0=amount0,
        champion=champion,
        competition=competition,
        engagement=engagement,
        icp_fit=icp,
        p_win=p_win,
        outcome=outcome,
        path=path,
        heroic=heroic,
        loss_reason=loss_reason,
    )


def _month_end(start: pd.Timestamp, days: np.ndarray) -> np.ndarray:
    """Reps like month ends: snap a day to the end of its month."""
    ts = start + pd.to_timedelta(days, unit="D")
    ends = (ts + pd.offsets.MonthEnd(0)).normalize()
    return np.asarray((ends - start) / pd.Timedelta(days=1), dtype=float)


def stage_events(
    rng: np.random.Generator, deals: Deals, start: pd.Timestamp, calendar: Calendar
) -> pd.DataFrame:
    """Every change of a deal's state as rows (deal, t, stage, amount, close_day), ffill-ready.

    The first row of each deal carries the full initial state; later rows carry only what
    changed (the rest is NaN) and the closing row carries everything.
    """
    n = deals.n
    duration = deals.duration
    outcome = deals.path  # the visible history follows the path; only the closing row the outcome
    not_won = outcome != WON

    # Where the deal enters and how far it gets. Late entries (created at proposal) are often
    # column fodder for a favoured vendor.
    late_entry_p = np.where((outcome == LOST) & deals.competition, 0.25, 0.04)
    entry = np.where(rng.random(n) < late_entry_p, LATE_STAGE, np.where(rng.random(n) < 0.16, 1, 0))
    reach = np.where(
        outcome == WON,
        4,
        np.where(
            outcome == LOST,
            entry + rng.binomial(4 - entry, 0.45),
            np.minimum(3, entry + rng.binomial(4 - entry, 0.35)),
        ),
    )
    reach = np.maximum(reach, entry)
    visited = reach - entry + 1

    # Stage entry times: gamma-distributed shares of the deal's life, closing at its end.
    weights = rng.gamma(2.0, 1.0, (n, 5))
    slot = np.arange(5)[None, :]
    weights = np.where(slot < visited[:, None], weights, 0.0)
    frac = np.cumsum(weights, axis=1) / weights.sum(axis=1, keepdims=True)
    frac = np.concatenate([np.zeros((n, 1)), frac[:, :-1]], axis=1) * 0.97
    in_path = slot < visited[:, None]
    deal_idx = np.broadcast_to(np.arange(n)[:, None], (n, 5))[in_path]
    stage = (entry[:, None] + slot)[in_path]
    t = (deals.created[:, None] + frac * duration[:, None])[in_path]
    first = np.broadcast_to(slot == 0, (n, 5))[in_path]

    # Planned close date: optimistic, often a month end.
    planned = deals.created + duration * rng.uniform(0.45, 0.95, n)
    planned = np.where(rng.random(n) < 0.5, _month_end(start, planned), np.floor(planned))
    final_close = np.floor(deals.closed)
    rows = [
        pd.DataFrame(
            {
                "deal": deal_idx,
                "t": t,
                "stage": stage.astype(float),
                "amount": np.where(first, deals.amount0[deal_idx], np.nan),
                "close_day": np.where(first, planned[deal_idx], np.nan),
            }
        )
    ]

    # Stage regressions: back one stage for a while, then forward again.
    end_of_slot = np.concatenate([frac[:, 1:], np.ones((n, 1))], axis=1)
    regress = (visited >= 3) & (rng.random(n) < np.where(not_won, 0.2, 0.07))
    r = np.flatnonzero(regress)
    j = rng.integers(1, visited[r])  # the visited slot in which the deal slides back
    lo = deals.created[r] + frac[r, j] * duration[r]
    hi = deals.created[r] + end_of_slot[r, j] * 0.97 * duration[r]
    back_stage = (entry[r] + j - 1).astype(float)
    rows.append(
        pd.DataFrame(
            {
                "deal": r,
                "t": lo + 0.35 * (hi - lo),
                "stage": back_stage,
                "amount": np.nan,
                "close_day": np.nan,
            }
        )
    )
    rows.append(
        pd.DataFrame(
            {
                "deal": r,
                "t": lo + 0.7 * (hi - lo),
                "stage": back_stage + 1,
                "amount": np.nan,
                "close_day": np.nan,
            }
        )
    )

    # Close-date slips: each pushes the expected close out by two to six weeks. Deals that
    # will be lost or stall slip more often.
    slips = rng.poisson(np.select([outcome == WON, outcome == LOST], [0.5, 1.2], 2.2))
    slips = np.minimum(slips, 6)
    slips[deals.heroic] = np.maximum(slips[deals.heroic], 1)
    s_deal = np.repeat(np.arange(n), slips)
    s_rank = np.arange(len(s_deal)) - np.repeat(np.cumsum(slips) - slips, slips) + 1
    s_t = deals.created[s_deal] + duration[s_deal] * (0.15 + 0.8 * s_rank / (slips[s_deal] + 1))
    pushed = np.cumsum(rng.uniform(14.0, 45.0, len(s_deal)))
    pushed -= np.repeat(np.concatenate([[0.0], pushed])[np.cumsum(slips) - slips], slips)
    s_close = np.maximum(np.floor(planned[s_deal] + pushed), np.floor(s_t) + 7)
    rows.append(
        pd.DataFrame(
            {"deal": s_deal, "t": s_t, "stage": np.nan, "amount": np.nan, "close_day": s_close}
        )
    )

    # Amount changes: upsizing mid-deal, discounting near the end, deep cuts for heroics.
    amount = deals.amount0.copy()
    up = rng.random(n) < 0.1
    up_t = deals.created + duration * rng.uniform(0.2, 0.5, n)
    amount = np.where(up, (amount * rng.uniform(1.1, 1.4, n)).round(-2), amount)
    rows.append(
        pd.DataFrame(
            {
                "deal": np.flatnonzero(up),
                "t": up_t[up],
                "stage": np.nan,
                "amount": amount[up],
                "close_day": np.nan,
            }
        )
    )
    discount = (rng.random(n) < np.where(outcome == WON, 0.35, 0.15)) | deals.heroic
    depth = np.where(deals.heroic, rng.uniform(0.6, 0.75, n), rng.uniform(0.8, 0.95, n))
    disc_t = np.where(
        deals.heroic,
        deals.closed - rng.uniform(1.0, 10.0, n),
        deals.created + duration * rng.uniform(0.8, 0.97, n),
    )
    disc_t = np.maximum(disc_t, deals.created + 0.5 * duration)
    amount = np.where(discount, (amount * depth).round(-2), amount)
    rows.append(
        pd.DataFrame(
            {
                "deal": np.flatnonzero(discount),
                "t": disc_t[discount],
                "stage": np.nan,
                "amount": amount[discount],
                "close_day": np.nan,
            }
        )
    )

    closing_stage = np.where(deals.outcome == WON, 5.0, 6.0)
    rows.append(
        pd.DataFrame(
            {
                "deal": np.arange(n),
                "t": deals.closed,
                "stage": closing_stage,
                "amount": amount,
                "close_day": final_close,
            }
        )
    )

    events = pd.concat(rows, ignore_index=True)
    events = events.sort_values(["deal", "t"], kind="stable", ignore_index=True)
    # Each deal's first row is complete, so a plain forward fill never crosses deals.
    events[["stage", "amount", "close_day"]] = events[["stage", "amount", "close_day"]].ffill()
    events["stage"] = events["stage"].astype(np.int8)
    return events
