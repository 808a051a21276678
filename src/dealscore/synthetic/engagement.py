"""Synthetic engagement (activities) and the reps' weekly forecasts, drawn from each deal's state.

Both read the hidden path the forward process left (process.Run.path): what the buyer does and
what the rep says at a moment depend on the deal's health and stage then, plus noise that has
nothing to do with how the deal ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dealscore.synthetic.deals import Deals
from dealscore.synthetic.process import (
    CLOSED_WON,
    EVENT_NAMES,
    GRID,
    N_STAGES,
    STEP,
    Calendar,
    sigmoid,
)
from dealscore.synthetic.world import World

ACTIVITY_TYPES = np.array(["email", "call", "meeting", "demo", "other"])
DIRECTIONS = np.array(["outbound", "inbound", "unknown"])
FRIDAY = 4
SPONSOR = int(np.flatnonzero(EVENT_NAMES == "sponsor_joined")[0])
BOOKED_CALLS = 0.3  # share of calls booked ahead (meetings and demos always are)
BOOKING_LEAD_DAYS = 6.0  # mean days from booking to the meeting, past a half-day minimum
LOGGED_LATE = 0.1  # share of other touches logged after they happen (mean half a day later)


@dataclass(frozen=True)
class RepKnobs:
    """How the reps read their deals (docs/synthetic.md): each knob is explicit, none is tuned."""

    optimism: float = 0.9  # log-odds every rep adds
    noise: float = 0.6  # log-odds: half a standing misread of the deal, half week to week
    icp_blindness: float = 1.0  # 1: reps assume every segment and every rep fares the same


def segments(path: pd.DataFrame) -> pd.DataFrame:
    """Spans of constant state: (deal, start, end, health, stage) for every open stretch."""
    deal = path["deal"].to_numpy()
    t = path["t"].to_numpy()
    stage = path["stage"].to_numpy()
    last = np.r_[deal[1:] != deal[:-1], True]
    keep = (stage < CLOSED_WON) & ~last
    end = np.r_[t[1:], np.nan]
    return pd.DataFrame(
        {
            "deal": deal[keep],
            "start": t[keep],
            "end": end[keep],
            "health": GRID[path["health"].to_numpy()[keep]],
            "stage": np.minimum(stage[keep], N_STAGES - 1),
        }
    )


def activities(
    rng: np.random.Generator,
    deals: Deals,
    world: World,
    path: pd.DataFrame,
    horizon: float,
    per_deal: float,
) -> pd.DataFrame:
    """Activity rows (deal or -1, account, t, created, type, direction, contact position) known
    before the export: t is when the touch happens, created when it was booked or logged."""
    deal, t, h, s, is_sponsor, joined_t = _touches(rng, deals, path, per_deal)
    kind = _kinds(rng, h, is_sponsor)
    t, created = _known_at(rng, kind, t, is_sponsor, joined_t)
    # Prospect-initiated touches come from buyers who care.
    direction = (rng.random(len(deal)) < sigmoid(-0.9 + 0.8 * h)).astype(np.int8)
    direction[rng.random(len(deal)) < 0.04] = 2
    account = deals.account[deal]
    contact = _contacts_touched(rng, world, account, h, s, is_sponsor)
    del h, s
    on_deal = pd.DataFrame(
        {
            "deal": deal.astype(np.int32),
            "account": account.astype(np.int32),
            "t": t,
            "created": created,
            "type": kind,
            "direction": direction,
            "contact": contact,
        }
    )
    m = int(0.04 * len(deal))
    del deal, account, t, created, kind, direction, contact
    rows = pd.concat([on_deal, _account_touches(rng, world, horizon, m)], ignore_index=True)
    del on_deal
    # The export holds what was known by its date: next steps booked for after it included.
    rows = rows[rows["created"] < horizon]
    return rows.sort_values("t", kind="stable", ignore_index=True)


def _touches(
    rng: np.random.Generator, deals: Deals, path: pd.DataFrame, per_deal: float
) -> tuple[np.ndarray, ...]:
    """(deal, t, health, stage, is_sponsor, when each sponsor joined) of every touch on a deal:
    engaged buyers touch more often, and more in the later stages; a sponsor joining shows as
    a meeting with a senior stakeholder within a few days."""
    spans = segments(path)
    length = (spans["end"] - spans["start"]).to_numpy()
    health = spans["health"].to_numpy()
    stage = spans["stage"].to_numpy()
    intensity = length * np.exp(0.8 * health) * (0.5 + 0.25 * stage)
    count = rng.poisson(intensity * (per_deal * deals.n / intensity.sum()))
    row = np.repeat(np.arange(len(spans)), count)
    deal = spans["deal"].to_numpy()[row]
    t = spans["start"].to_numpy()[row] + rng.random(len(row)) * length[row]
    h = health[row]
    s = stage[row]
    del row, length, health, stage, intensity, count

    joined = path[path["event"].to_numpy() == SPONSOR]
    sponsor_t = joined["t"].to_numpy() + rng.uniform(0.3, 3.0, len(joined))
    deal = np.concatenate([deal, joined["deal"].to_numpy()])
    t = np.concatenate([t, sponsor_t])
    h = np.concatenate([h, GRID[joined["health"].to_numpy()]])
    s = np.concatenate([s, np.minimum(joined["stage"].to_numpy(), N_STAGES - 1)])
    is_sponsor = np.r_[np.zeros(len(deal) - len(joined), bool), np.ones(len(joined), bool)]
    return deal, t, h, s, is_sponsor, np.asarray(joined["t"].to_numpy(), dtype=float)


def _kinds(rng: np.random.Generator, h: np.ndarray, is_sponsor: np.ndarray) -> np.ndarray:
    """Each touch's type: email, call, meeting (more in healthy deals), demo, other; cumulative
    thresholds row by row, without an (activities x types) matrix. A sponsor's is a meeting."""
    meeting = 0.07 + 0.14 * sigmoid(h)
    draw = rng.random(len(h))
    email_end = 0.55 - meeting
    kind = (
        (draw > email_end).astype(np.int8)
        + (draw > email_end + 0.22)
        + (draw > 0.77)
        + (draw > 0.83)
    ).astype(np.int8)
    kind[is_sponsor] = 2
    return kind


def _known_at(
    rng: np.random.Generator,
    kind: np.ndarray,
    t: np.ndarray,
    is_sponsor: np.ndarray,
    joined_t: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(t, created): meetings, demos and some calls are booked ahead, drawn from the state on
    the day they are booked (a next step says what the deal was then, not later); other touches
    are logged when they happen, a few of them late; a sponsor's meeting is booked the day the
    sponsor joined. Its own stream (spawning leaves `rng` as it was): later draws are unchanged."""
    book = rng.spawn(1)[0]
    booked = (kind == 2) | (kind == 3) | ((kind == 1) & (book.random(len(kind)) < BOOKED_CALLS))
    booked[is_sponsor] = False
    created = t.copy()
    lead = np.minimum(0.5 + book.exponential(BOOKING_LEAD_DAYS, len(t)), 45.0)
    t = np.where(booked, t + lead, t)
    late = ~booked & ~is_sponsor & (book.random(len(kind)) < LOGGED_LATE)
    created[late] += book.exponential(0.5, int(late.sum()))
    created[is_sponsor] = joined_t
    return t, created


def _contacts_touched(
    rng: np.random.Generator,
    world: World,
    account: np.ndarray,
    h: np.ndarray,
    s: np.ndarray,
    is_sponsor: np.ndarray,
) -> np.ndarray:
    """Who each touch reached (a contact row, -1 for none named): healthy deals are
    multi-threaded, and a senior stakeholder joins late in good ones."""
    n = len(account)
    available = world.contact_count[account]
    pool = 1 + rng.binomial(available - 1, sigmoid(-0.6 + 0.6 * h))
    position = np.floor(rng.random(n) * pool).astype(np.int64)
    senior = ((s >= 3) & (rng.random(n) < 0.4 * sigmoid(1.5 * h - 1.0))) | is_sponsor
    top = available - 1 - np.floor(rng.random(n) * np.minimum(2, available)).astype(np.int64)
    position = np.where(senior, top, position)
    contact = (world.contact_offset[account] + position).astype(np.int32)
    contact[(rng.random(n) < 0.08) & ~is_sponsor] = -1
    return contact


def _account_touches(
    rng: np.random.Generator, world: World, horizon: float, m: int
) -> pd.DataFrame:
    """Account-level touches (newsletters, events) not tied to any deal."""
    account_t = rng.uniform(0.0, horizon, m)
    return pd.DataFrame(
        {
            "deal": np.full(m, -1, dtype=np.int32),
            "account": rng.integers(0, len(world.contact_count), m).astype(np.int32),
            "t": account_t,
            "created": account_t,
            "type": np.where(rng.random(m) < 0.7, 0, 4).astype(np.int8),
            "direction": np.zeros(m, dtype=np.int8),
            "contact": np.full(m, -1, dtype=np.int32),
        }
    )


def _fridays(
    deals: Deals, end: np.ndarray, horizon: float, calendar: Calendar
) -> tuple[np.ndarray, np.ndarray]:
    """(deal, t) of every Friday 17:00 UTC at which each deal is open, before the export."""
    first_friday = (FRIDAY - calendar.start.day_of_week) % 7 + 17 / 24
    stop = np.minimum(end, horizon)
    k_first = np.ceil((deals.created - first_friday) / 7.0).astype(np.int64)
    k_last = np.ceil((stop - first_friday) / 7.0).astype(np.int64) - 1
    count = np.maximum(k_last - k_first + 1, 0)
    deal = np.repeat(np.arange(deals.n), count)
    k = np.arange(len(deal)) - np.repeat(np.cumsum(count) - count, count) + k_first[deal]
    return deal, first_friday + 7.0 * k


def _shown(
    deal: np.ndarray, t: np.ndarray, path: pd.DataFrame, events: pd.DataFrame
) -> pd.DataFrame:
    """What the CRM showed the rep at each (deal, t): the deal's state and its latest recorded
    stage, close date and amount, in submission order."""
    # merge_asof renumbers its rows: `row` puts them back in submission order.
    subs = pd.DataFrame({"deal": deal.astype(np.int32), "t": t, "row": np.arange(len(deal))})
    subs = subs.sort_values("t", kind="stable")
    state = pd.merge_asof(
        subs, path.sort_values("t", kind="stable"), on="t", by="deal", direction="backward"
    )
    shown = pd.merge_asof(
        state, events.sort_values("t", kind="stable"), on="t", by="deal", direction="backward"
    )
    return shown.sort_values("row", ignore_index=True)


def forecasts(
    rng: np.random.Generator,
    deals: Deals,
    world: World,
    path: pd.DataFrame,
    events: pd.DataFrame,
    end: np.ndarray,
    horizon: float,
    calendar: Calendar,
    eventual: np.ndarray,
    knobs: RepKnobs,
) -> pd.DataFrame:
    """Weekly (Friday 17:00 UTC) rep forecasts for every deal open at the time.

    The rep reads the deal's current health and stage (`eventual`: what they are worth), with a
    standing and a weekly misread, the knobs' optimism and blindness to segments and skill, and
    their own bias (sandbaggers read low). Near a quarter end, deals due this quarter get
    pushed into commit.
    """
    deal, t = _fridays(deals, end, horizon, calendar)
    shown = _shown(deal, t, path, events)
    close_day = shown["close_day"].to_numpy()
    stage = np.minimum(shown["stage_x"].to_numpy(), N_STAGES)

    # What the rep cannot see: how the deal's segment and their own skill move the odds.
    owner = deals.owner[deal]
    unseen = (deals.icp_fit - deals.icp_fit.mean())[deal] + world.owner_skill[owner]
    read = np.clip(
        shown["health"].to_numpy() - np.round(knobs.icp_blindness * unseen / STEP),
        0,
        len(GRID) - 1,
    ).astype(np.int64)
    day = np.minimum(np.floor(t).astype(np.int64), len(eventual) - 1)
    worth = eventual[day, deals.klass[deal], stage, read].astype(float)
    worth = np.clip(worth, 1e-4, 1 - 1e-4)
    standing = rng.normal(0.0, knobs.noise / np.sqrt(2), deals.n)[deal]
    belief = (
        np.log(worth / (1 - worth))
        + knobs.optimism
        + world.owner_bias[owner]
        + standing
        + rng.normal(0.0, knobs.noise / np.sqrt(2), len(deal))
    )
    quarter_end = calendar.next_boundary(t)
    heroics = (quarter_end - t <= 21.0) & (close_day < quarter_end)
    p = sigmoid(belief + np.where(heroics, 2.0, 0.0))
    category = np.select(
        [p >= 0.7, p >= 0.45, p >= 0.15], ["commit", "best_case", "pipeline"], "omitted"
    )
    gives = world.owner_gives_probability[owner]
    return pd.DataFrame(
        {
            "deal": deal,
            "t": t,
            "forecast_category": category,
            "probability": np.where(gives, np.round(p * 20) / 20, np.nan),
            "amount": shown["amount"].to_numpy(),
            "period": calendar.labels[calendar.index(close_day)],
        }
    )
