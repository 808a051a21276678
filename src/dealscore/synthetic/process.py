"""The forward process behind the synthetic CRM: each deal's hidden state runs day by day.

An open deal's state after day d is its health (an index on `GRID`), its stage (0-4 the CRM
stages, `RESCUE` a heroic save under way) and its speed class (account size band, renewal or not;
fixed). On day d, in this order: health moves (a random walk step on Mondays, plus at most one
event such as a champion leaving), the stage may move (advance, slide back, or a rescue near a
quarter end), then the deal may close: won, lost or no decision, by competing hazards that
depend on the health, the stage, the class and the calendar (quarter ends pull wins in).

Everything a model can see is drawn afterwards from this state and independent noise, never from
the outcome. The chain is Markov, so P(won | state at t) is the best any model can do: `Chain`
computes it exactly by backward induction over the same tables the simulation samples from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

STEP = 0.2
GRID = np.round(np.arange(-4.8, 4.8 + STEP / 2, STEP), 10)
G = len(GRID)
N_STAGES = 5
RESCUE = 5  # negotiation, after a deep discount offered at a quarter's end
S = N_STAGES + 1
# Codes of a closed deal in the path (after the open states).
CLOSED_WON, CLOSED_LOST, CLOSED_NO_DECISION = 6, 7, 8
# Median sales cycle in days by employee band: bigger buyers take longer; renewals are quicker.
CYCLE_DAYS = np.array([30.0, 45.0, 70.0, 100.0, 140.0])
RENEWAL_SPEED = 0.6
C = 2 * len(CYCLE_DAYS)
# Events: (name, chance per day, health change in grid steps). Independent of the future.
EVENTS: tuple[tuple[str, float, int], ...] = (
    ("champion_left", 1 / 500, -5),
    ("competitor_entered", 1 / 400, -3),
    ("budget_freeze", 1 / 600, -4),
    ("sponsor_joined", 1 / 300, 4),
    ("buyer_quiet", 1 / 350, -3),
)
EVENT_NAMES = np.array(["", *(e[0] for e in EVENTS)])
WALK_MEAN, WALK_SD = -0.03, 0.4  # weekly, in health units: time slowly kills deals
WALK_REACH = 4
RESCUE_WINDOW = 10  # days before a quarter's end when a losing deal may be rescued
RESCUE_DAYS = 10  # a rescued deal signs within this many days of the next quarter


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def health_index(health: np.ndarray) -> np.ndarray:
    """The grid position nearest each health value (clipped to the grid)."""
    return np.clip(np.round((np.asarray(health) - GRID[0]) / STEP), 0, G - 1).astype(np.int16)


def speed_class(band: np.ndarray, renewal: np.ndarray) -> np.ndarray:
    return (2 * np.asarray(band) + np.asarray(renewal, dtype=int)).astype(np.int8)


def _walk() -> np.ndarray:
    """Weekly step probabilities over -WALK_REACH..WALK_REACH grid steps (a discretised normal)."""
    k = np.arange(-WALK_REACH, WALK_REACH + 1)
    edges = norm.cdf(((k + 0.5) * STEP - WALK_MEAN) / WALK_SD) - norm.cdf(
        ((k - 0.5) * STEP - WALK_MEAN) / WALK_SD
    )
    return edges / edges.sum()


@dataclass(frozen=True)
class Calendar:
    """Per-day facts of the chain: Mondays, quarter position; day 0 is the history start."""

    start: pd.Timestamp
    monday: np.ndarray  # bool per day
    to_quarter_end: np.ndarray  # days from the day to the next quarter start
    into_quarter: np.ndarray  # days since the quarter started
    boundaries: np.ndarray  # day of each quarter's first instant, ascending
    labels: np.ndarray  # "2026Q3" for the quarter starting at each boundary

    @classmethod
    def build(cls, start: pd.Timestamp, days: int) -> Calendar:
        first = (start - pd.offsets.QuarterBegin(startingMonth=1)).normalize()
        quarters = pd.date_range(first, start + pd.Timedelta(days=days + 400), freq="QS")
        bounds = np.asarray((quarters - start) / pd.Timedelta(days=1), dtype=float)
        day = np.arange(days + 1)
        q = np.searchsorted(bounds, day, side="right") - 1
        return cls(
            start=start,
            monday=(start.day_of_week + day) % 7 == 0,
            to_quarter_end=bounds[q + 1] - day,
            into_quarter=day - bounds[q],
            boundaries=bounds,
            labels=np.array([f"{x.year}Q{x.quarter}" for x in quarters]),
        )

    def index(self, days: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.boundaries, days, side="right") - 1

    def next_boundary(self, days: np.ndarray) -> np.ndarray:
        """Start of the next quarter (the end of the quarter each day falls in)."""
        return self.boundaries[self.index(days) + 1]


@dataclass(frozen=True)
class Hazards:
    """Per-day hazards by (class, stage, health); the calendar scales some of them."""

    advance: np.ndarray
    regress: np.ndarray
    rescue: np.ndarray  # only on the last RESCUE_WINDOW days of a quarter
    won: np.ndarray  # times the quarter-end pull
    lost: np.ndarray
    no_decision: np.ndarray

    @classmethod
    def build(cls, heroic_rate: float) -> Hazards:
        shape = (C, S, G)
        cycle = np.repeat(CYCLE_DAYS, 2) * np.tile([1.0, RENEWAL_SPEED], len(CYCLE_DAYS))
        rate = (5.0 / cycle)[:, None, None]  # five steps (four advances and a close) per cycle
        h = GRID[None, None, :]
        stage = np.arange(S)[None, :, None]
        open_stage = stage < N_STAGES
        zeros = np.zeros(shape)
        advance = np.where(stage < N_STAGES - 1, rate * 1.1 * sigmoid(1.2 * h + 0.4), zeros)
        regress = np.where((stage >= 1) & open_stage, rate * 0.12 * sigmoid(-1.5 * h - 1.5), zeros)
        rescue = np.where(stage == N_STAGES - 1, heroic_rate * sigmoid(-1.5 * h - 0.5), zeros)
        closing = rate * sigmoid(1.5 * h + 0.3)
        won = np.select([stage == N_STAGES - 1, stage == N_STAGES - 2], [closing, 0.06 * closing])
        lost = np.where(open_stage, rate * (0.2 + 0.08 * stage) * sigmoid(-1.5 * h - 0.8), zeros)
        stall = np.where(stage < N_STAGES - 1, 1.0, 0.3)
        no_decision = np.where(open_stage, rate * 0.2 * stall * sigmoid(-h - 1.2), zeros)
        return cls(advance, regress, rescue, won, lost, no_decision)


@dataclass(frozen=True)
class DayRules:
    """What one day of the calendar does to the hazards."""

    won_pull: float  # multiplier on the won hazard
    rescue_open: bool  # a losing deal in negotiation may be rescued today
    rescue_won: float  # chance a rescued deal signs today


class Chain:
    """The process's tables and calendar: sampled by `simulate`, integrated by `value_back`."""

    def __init__(self, calendar: Calendar, heroic_rate: float, quarter_end_pull: float) -> None:
        self.calendar = calendar
        self.hazards = Hazards.build(heroic_rate)
        self.quarter_end_pull = quarter_end_pull
        walk = _walk()
        event_p = np.array([e[1] for e in EVENTS])
        self.event_p = np.concatenate([[1.0 - event_p.sum()], event_p])
        self.event_step = np.array([0, *(e[2] for e in EVENTS)])
        self.walk = walk
        reach = WALK_REACH + int(np.abs(self.event_step).max())
        self.shifts = np.arange(-reach, reach + 1)
        on_monday = np.zeros(len(self.shifts))
        off = np.zeros(len(self.shifts))
        for p, step in zip(self.event_p, self.event_step, strict=True):
            off[step + reach] += p
            for k, w in zip(range(-WALK_REACH, WALK_REACH + 1), walk, strict=True):
                on_monday[step + k + reach] += p * w
        self.kernel = {True: on_monday, False: off}
        self.shifted = np.clip(np.arange(G)[None, :] + self.shifts[:, None], 0, G - 1)
        self._moves: dict[DayRules, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._closings: dict[DayRules, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def rules(self, day: int) -> DayRules:
        cal = self.calendar
        to_end, into = cal.to_quarter_end[day], cal.into_quarter[day]
        pull = self.quarter_end_pull if to_end <= 7 else (0.75 if into < 21 else 1.0)
        if to_end <= RESCUE_WINDOW + 2:
            rescue_won = 0.0  # the discount is offered; the buyer signs in the new quarter
        else:
            rescue_won = 0.35 if into < RESCUE_DAYS else 1.0
        return DayRules(pull, bool(to_end <= RESCUE_WINDOW), rescue_won)

    def moves(self, rules: DayRules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P(advance), P(regress), P(rescue) by (class, stage, health) for one day."""
        if rules in self._moves:
            return self._moves[rules]
        z = self.hazards
        rescue = z.rescue if rules.rescue_open else np.zeros_like(z.rescue)
        total = z.advance + z.regress + rescue
        any_move = -np.expm1(-total)
        share = np.divide(any_move, total, out=np.zeros_like(total), where=total > 0)
        out = z.advance * share, z.regress * share, rescue * share
        self._moves[rules] = out
        return out

    def closings(self, rules: DayRules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P(won), P(lost), P(no decision) by (class, stage, health) for one day."""
        if rules in self._closings:
            return self._closings[rules]
        z = self.hazards
        won = z.won * rules.won_pull
        total = won + z.lost + z.no_decision
        any_close = -np.expm1(-total)
        share = np.divide(any_close, total, out=np.zeros_like(total), where=total > 0)
        won, lost, nd = won * share, z.lost * share, z.no_decision * share
        won[:, RESCUE, :] = rules.rescue_won
        self._closings[rules] = won, lost, nd
        return won, lost, nd

    def value_back(self, after: np.ndarray, day: int, won_weight: float) -> np.ndarray:
        """The value of each state after day-1 from the value `after` day `day` (both (C, S, G)).

        A value is the chance of a win that counts (`won_weight` for one on `day`) from there.
        """
        rules = self.rules(day)
        won, lost, nd = self.closings(rules)
        after_move = won * won_weight + (1.0 - won - lost - nd) * after
        adv, reg, res = self.moves(rules)
        up = np.concatenate([after_move[:, 1:N_STAGES], after_move[:, N_STAGES - 1 : N_STAGES]], 1)
        up = np.concatenate([up, after_move[:, RESCUE:]], 1)
        down = np.concatenate([after_move[:, :1], after_move[:, : N_STAGES - 1]], 1)
        down = np.concatenate([down, after_move[:, RESCUE:]], 1)
        rescued = np.broadcast_to(after_move[:, RESCUE : RESCUE + 1], after_move.shape)
        after_walk = (1 - adv - reg - res) * after_move + adv * up + reg * down + res * rescued
        kernel = self.kernel[bool(self.calendar.monday[day])]
        value = np.zeros_like(after_walk)
        for weight, index in zip(kernel, self.shifted, strict=True):
            if weight > 0:
                value += weight * after_walk[:, :, index]
        return value

    def eventual(self) -> np.ndarray:
        """P(ever won | state after day d) for every day of the calendar: (days, C, S, G) float32.

        A deal still open on the calendar's last day is closed as no decision (the CRM's cleanup).
        """
        days = len(self.calendar.monday)
        out = np.zeros((days, C, S, G), dtype=np.float32)
        value = np.zeros((C, S, G))
        for day in range(days - 1, 0, -1):
            value = self.value_back(value, day, 1.0)
            out[day - 1] = value
        return out

    def within(self, as_of: float, horizon_days: float) -> np.ndarray:
        """P(won, its close recorded before as_of + horizon | state after day floor(as_of))."""
        end = as_of + horizon_days
        last = min(int(np.floor(end)), len(self.calendar.monday) - 1)
        first = int(np.floor(as_of))
        value = np.zeros((C, S, G))
        for day in range(last, first, -1):
            weight = 1.0 if day < last else recorded_before(end - last)
            value = self.value_back(value, day, weight)
        return value


# A close decided on day d is recorded at d + CLOSE_HOURS (as a share of the day), uniformly.
CLOSE_HOURS = (0.3, 0.8)


def recorded_before(fraction: float) -> float:
    """Chance a close decided on a day is recorded before `fraction` of that day."""
    lo, hi = CLOSE_HOURS
    return float(np.clip((fraction - lo) / (hi - lo), 0.0, 1.0))
