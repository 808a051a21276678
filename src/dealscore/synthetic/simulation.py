"""Running the forward process (process.py) day by day over every deal, vectorised over deals.

Each day's open deals move in the order process.py describes: health, then stage, then a close.
The path keeps a row whenever a deal's health or stage changes, and one when it ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dealscore.synthetic.process import (
    CLOSED_LOST,
    CLOSED_NO_DECISION,
    CLOSED_WON,
    RESCUE,
    WALK_REACH,
    Chain,
    G,
)


@dataclass(frozen=True)
class Run:
    """What the simulation did: the hidden path and each deal's end."""

    path: pd.DataFrame  # deal, t (days), health index, stage (0-5 open, 6-8 closed), event
    outcome_day: np.ndarray  # chain day each deal closed
    outcome: np.ndarray  # CLOSED_WON, CLOSED_LOST or CLOSED_NO_DECISION
    rescued: np.ndarray  # went through a rescue


def simulate(
    rng: np.random.Generator,
    chain: Chain,
    created: np.ndarray,
    health0: np.ndarray,
    stage0: np.ndarray,
    klass: np.ndarray,
    on_day: Callable[[DayState], None] | None = None,
) -> Run:
    """Run every deal forward from its creation, one calendar day at a time (vectorised over deals).

    `on_day` sees each day's open deals after their moves, to draw what is observable then.
    """
    n = len(created)
    days = len(chain.calendar.monday)
    order = np.argsort(created, kind="stable")
    born = np.floor(created[order]).astype(np.int64) + 1  # first transition day
    health = health0.astype(np.int16).copy()
    stage = stage0.astype(np.int8).copy()
    rescued = np.zeros(n, dtype=bool)
    outcome = np.full(n, CLOSED_NO_DECISION, dtype=np.int8)
    outcome_day = np.full(n, days - 1, dtype=np.int64)
    rows: list[tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]] = []
    live = np.empty(0, dtype=np.int64)
    joined = 0
    cum_events = np.cumsum(chain.event_p)
    cum_walk = np.cumsum(chain.walk)
    for day in range(int(born[0]) if n else days, days):
        live, joined = _admit(live, order, born, joined, day)
        if not len(live):
            if joined == n:
                break
            continue
        rules = chain.rules(day)
        event, h = _health_step(rng, chain, day, health[live], cum_events, cum_walk)
        h_old, s_old = health[live], stage[live]
        c = klass[live]
        s, into_rescue = _stage_step(rng, chain.moves(rules), c, s_old, h)
        rescued[live[into_rescue]] = True
        ends = _closes(rng, chain.closings(rules), c, s, h)
        if day == days - 1:
            ends[ends == 0] = CLOSED_NO_DECISION
        changed = (h != h_old) | (s != s_old) | (ends > 0)
        if changed.any():  # a path row: deal, day, health, stage (or how it ended), event
            shown = np.where(ends > 0, ends, s)
            rows.append((live[changed], day, h[changed], shown[changed], event[changed]))
        health[live], stage[live] = h, s
        if on_day is not None:
            on_day(DayState(day, live, h, s_old, s, ends))
        closing = ends > 0
        outcome[live[closing]] = ends[closing]
        outcome_day[live[closing]] = day
        live = live[~closing]
    path = _path(rows, created, health0, stage0)
    return Run(path, outcome_day, outcome, rescued)


def _admit(
    live: np.ndarray, order: np.ndarray, born: np.ndarray, joined: int, day: int
) -> tuple[np.ndarray, int]:
    """The open deals with those born by `day` added, and how many of `order` have joined."""
    upto = int(np.searchsorted(born, day, side="right"))
    if upto > joined:
        return np.concatenate([live, order[joined:upto]]), upto
    return live, joined


def _health_step(
    rng: np.random.Generator,
    chain: Chain,
    day: int,
    h_old: np.ndarray,
    cum_events: np.ndarray,
    cum_walk: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(today's event, the new health) of each open deal: the event's step, plus on Mondays a
    random walk."""
    k = len(h_old)
    event = np.searchsorted(cum_events, rng.random(k), side="right").astype(np.int8)
    event = np.minimum(event, len(cum_events) - 1)
    step = chain.event_step[event]
    if chain.calendar.monday[day]:
        walk = np.searchsorted(cum_walk, rng.random(k), side="right")
        step = step + np.minimum(walk, len(cum_walk) - 1) - WALK_REACH
    return event, np.clip(h_old + step, 0, G - 1).astype(np.int16)


def _stage_step(
    rng: np.random.Generator,
    moves: tuple[np.ndarray, np.ndarray, np.ndarray],
    c: np.ndarray,
    s_old: np.ndarray,
    h: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(the new stage, whether the deal went into rescue): one step forward, one back, or into
    rescue, by (class, stage, health)."""
    adv, reg, res = moves
    u = rng.random(len(c))
    p_adv, p_reg, p_res = adv[c, s_old, h], reg[c, s_old, h], res[c, s_old, h]
    s = s_old.copy()
    s[u < p_adv] += 1
    s[(u >= p_adv) & (u < p_adv + p_reg)] -= 1
    into_rescue = (u >= p_adv + p_reg) & (u < p_adv + p_reg + p_res)
    s[into_rescue] = RESCUE
    return s, into_rescue


def _closes(
    rng: np.random.Generator,
    closings: tuple[np.ndarray, np.ndarray, np.ndarray],
    c: np.ndarray,
    s: np.ndarray,
    h: np.ndarray,
) -> np.ndarray:
    """How each open deal ends today (0: it stays open)."""
    won, lost, nd = closings
    u = rng.random(len(c))
    p_won, p_lost, p_nd = won[c, s, h], lost[c, s, h], nd[c, s, h]
    return np.select(
        [u < p_won, u < p_won + p_lost, u < p_won + p_lost + p_nd],
        [CLOSED_WON, CLOSED_LOST, CLOSED_NO_DECISION],
        0,
    ).astype(np.int8)


@dataclass(frozen=True)
class DayState:
    """One day's open deals (before today's closes are removed), for drawing observables."""

    day: int
    deals: np.ndarray
    health: np.ndarray
    stage_before: np.ndarray
    stage: np.ndarray
    ends: np.ndarray  # 0 open, else the closing code


def _path(
    rows: list[tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]],
    created: np.ndarray,
    health0: np.ndarray,
    stage0: np.ndarray,
) -> pd.DataFrame:
    n = len(created)
    deal = np.concatenate([np.arange(n), *(r[0] for r in rows)])
    t = np.concatenate([created, *(np.full(len(r[0]), float(r[1])) for r in rows)])
    health = np.concatenate([health0, *(r[2] for r in rows)]).astype(np.int16)
    stage = np.concatenate([stage0, *(r[3] for r in rows)]).astype(np.int8)
    event = np.concatenate([np.zeros(n, dtype=np.int8), *(r[4] for r in rows)])
    frame = pd.DataFrame(
        {"deal": deal.astype(np.int32), "t": t, "health": health, "stage": stage, "event": event}
    )
    return frame.sort_values(["deal", "t"], kind="stable", ignore_index=True)
