"""Synthetic engagement (activities) and the reps' weekly forecasts, both driven by deal quality."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.synthetic.deals import LOST, STAGE_PROBABILITY, WON, Calendar, Deals, sigmoid
from dealscore.synthetic.world import World

ACTIVITY_TYPES = np.array(["email", "call", "meeting", "demo", "other"])
DIRECTIONS = np.array(["outbound", "inbound", "unknown"])
FRIDAY = 4


def activities(
    rng: np.random.Generator,
    deals: Deals,
    world: World,
    horizon: float,
    per_deal: float,
) -> pd.DataFrame:
    """Activity rows (deal or -1, t, type, direction, contact position) before the export."""
    n = deals.n
    outcome = deals.path  # activity follows the visible path (deals.py), not the outcome
    weeks = deals.duration / 7.0
    intensity = (
        weeks
        * np.exp(0.5 * deals.engagement)
        * np.select([outcome == WON, outcome == LOST], [1.15, 0.9], 0.75)
    )
    expected = intensity * (per_deal * n / intensity.sum())
    count = rng.poisson(expected)
    deal = np.repeat(np.arange(n), count)

    # When: won deals ramp up toward the close; lost deals go quiet; no-decisions fizzle out.
    a = np.select([outcome == WON, outcome == LOST], [1.4, 1.0], 1.0)[deal]
    b = np.select([outcome == WON, outcome == LOST], [1.0, 1.7], 2.3)[deal]
    u = rng.beta(a, b)
    del a, b
    t = deals.created[deal] + u * deals.duration[deal]

    e = deals.engagement[deal]
    # Type shares: email, call, meeting (more in engaged deals), demo, other. Cumulative
    # thresholds row by row, without an (activities x types) matrix.
    meeting = 0.07 + 0.14 * sigmoid(e)
    draw = rng.random(len(deal))
    email_end = 0.55 - meeting
    kind = (
        (draw > email_end).astype(np.int8)
        + (draw > email_end + 0.22)
        + (draw > 0.77)
        + (draw > 0.83)
    ).astype(np.int8)
    del meeting, draw, email_end

    # Prospect-initiated touches mark good deals; in losing deals they dry up over time.
    p_inbound = sigmoid(-0.9 + 0.8 * e + 0.4 * deals.champion[deal])
    p_inbound = np.where(outcome[deal] == WON, p_inbound, p_inbound * (1.0 - 0.6 * u))
    direction = (rng.random(len(deal)) < p_inbound).astype(np.int8)
    direction[rng.random(len(deal)) < 0.04] = 2
    del p_inbound, e

    # Who: good deals are multi-threaded; in wins, a senior stakeholder tends to appear late.
    account = deals.account[deal]
    available = world.contact_count[account]
    pool = (
        1
        + rng.binomial(
            world.contact_count[deals.account] - 1, sigmoid(-0.6 + 0.8 * deals.engagement)
        )[deal]
    )
    position = np.floor(rng.random(len(deal)) * pool).astype(np.int64)
    p_senior = np.where(outcome[deal] == WON, 0.3, 0.06)
    senior = (u > 0.55) & (rng.random(len(deal)) < p_senior)
    top = (
        available - 1 - np.floor(rng.random(len(deal)) * np.minimum(2, available)).astype(np.int64)
    )
    position = np.where(senior, top, position)
    contact = (world.contact_offset[account] + position).astype(np.int32)
    contact[rng.random(len(deal)) < 0.08] = -1
    del available, pool, position, p_senior, senior, top

    on_deal = pd.DataFrame(
        {
            "deal": deal.astype(np.int32),
            "account": account.astype(np.int32),
            "t": t,
            "type": kind,
            "direction": direction,
            "contact": contact,
        }
    )
    # Account-level touches (newsletters, events) not tied to any deal.
    m = int(0.04 * len(deal))
    del deal, account, t, kind, direction, contact, u
    n_accounts = len(world.contact_count)
    on_account = pd.DataFrame(
        {
            "deal": np.full(m, -1, dtype=np.int32),
            "account": rng.integers(0, n_accounts, m).astype(np.int32),
            "t": rng.uniform(0.0, horizon, m),
            "type": np.where(rng.random(m) < 0.7, 0, 4).astype(np.int8),
            "direction": np.zeros(m, dtype=np.int8),
            "contact": np.full(m, -1, dtype=np.int32),
        }
    )
    rows = pd.concat([on_deal, on_account], ignore_index=True)
    del on_deal
    rows = rows[rows["t"] < horizon]
    return rows.sort_values("t", kind="stable", ignore_index=True)


def forecasts(
    rng: np.random.Generator,
    deals: Deals,
    world: World,
    events: pd.DataFrame,
    start: pd.Timestamp,
    horizon: float,
    calendar: Calendar,
) -> pd.DataFrame:
    """Weekly (Friday 17:00 UTC) rep forecasts for every deal open at the time.

    A noisy, optimistic read of the truth: reps see more of the deal than the CRM does, but
    round up, and near a quarter end they push weak deals due this quarter into commit.
    Some reps sandbag (a negative bias in the world).
    """
    first_friday = (FRIDAY - start.day_of_week) % 7 + 17 / 24
    end = np.minimum(deals.closed, horizon)
    k_first = np.ceil((deals.created - first_friday) / 7.0).astype(np.int64)
    k_last = np.ceil((end - first_friday) / 7.0).astype(np.int64) - 1
    count = np.maximum(k_last - k_first + 1, 0)
    deal = np.repeat(np.arange(deals.n), count)
    k = np.arange(len(deal)) - np.repeat(np.cumsum(count) - count, count) + k_first[deal]
    t = first_friday + 7.0 * k

    # The deal's state when the rep submits (stage, amount, expected close).
    subs = pd.DataFrame({"deal": deal, "t": t}).sort_values("t", kind="stable")
    state = pd.merge_asof(
        subs, events.sort_values("t", kind="stable"), on="t", by="deal", direction="backward"
    )
    state = state.sort_index()
    stage = state["stage"].to_numpy()
    close_day = state["close_day"].to_numpy()

    progress = (t - deals.created[deal]) / deals.duration[deal]
    truth = np.where(deals.path[deal] == WON, 1.0, -1.0)  # what the rep sees: the path
    # The rep knows the deal (champion, competition, engagement) but not how its segment fares
    # (they assume an average ICP fit) nor how their own skill moves the odds: history reveals
    # both to the model, not to the rep.
    rep_view = (
        np.log(deals.p_win / (1 - deals.p_win))
        - (deals.icp_fit - deals.icp_fit.mean())
        - world.owner_skill[deals.owner]
    )
    belief = (
        rep_view[deal]
        + 0.9
        + world.owner_bias[deals.owner[deal]]
        + 2.0 * progress * truth
        + 1.2 * (STAGE_PROBABILITY[np.minimum(stage, 4)] - 0.3)
        + rng.normal(0.0, 0.6, len(deal))
    )
    quarter_end = calendar.next_boundary(t)
    heroics = (quarter_end - t <= 21.0) & (close_day < quarter_end)
    belief = belief + np.where(heroics, 1.2, 0.0)
    p = sigmoid(belief)
    category = np.select(
        [p >= 0.7, p >= 0.45, p >= 0.15], ["commit", "best_case", "pipeline"], "omitted"
    )
    gives = world.owner_gives_probability[deals.owner[deal]]
    probability = np.where(gives, np.round(p * 20) / 20, np.nan)
    return pd.DataFrame(
        {
            "deal": deal,
            "t": t,
            "forecast_category": category,
            "probability": probability,
            "amount": state["amount"].to_numpy(),
            "period": calendar.labels[calendar.index(close_day)],
        }
    )
