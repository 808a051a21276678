"""The recent correction: a change of the win rate read from windows not yet ended."""

from __future__ import annotations

import numpy as np
import pytest

from dealscore.model.recent import recent_shift, win_timing
from dealscore.model.scorers import logit, sigmoid

HORIZON = 60.0


def _world(shift: float, seed: int = 0, deals: int = 3000):
    """Labelled wins (probability, days to win) and recent snapshots of deals whose true win
    probability is the model's moved by `shift` in log-odds; likely wins come sooner."""
    rng = np.random.default_rng(seed)
    # the labelled history: the same kind of deals, won at the model's rate, before the change
    p_labelled = rng.uniform(0.05, 0.7, 12_000)
    won = rng.random(12_000) < p_labelled
    days = np.minimum(rng.exponential(10 + 40 * (1 - p_labelled[won])), HORIZON)
    timing = win_timing(p_labelled[won], days, rng.uniform(0, 91, won.sum()))
    p = rng.uniform(0.05, 0.7, deals)
    truth = sigmoid(logit(p) + shift)
    wins = rng.random(deals) < truth
    win_day = np.minimum(rng.exponential(10 + 40 * (1 - p)), HORIZON)
    rows = np.repeat(np.arange(deals), 3)  # each deal seen at three recent dates
    elapsed = rng.uniform(0, HORIZON, len(rows))
    won_so_far = (wins[rows] & (win_day[rows] <= elapsed)).astype(int)
    phase = rng.uniform(0, 91, len(rows))
    return p[rows], elapsed, phase, won_so_far, rows.astype(str), timing


def test_a_steady_business_moves_nothing():
    assert abs(recent_shift(*_world(shift=0.0))) < 0.1


@pytest.mark.parametrize("shift", [-0.7, 0.7])
def test_a_changed_win_rate_is_read_from_the_early_wins(shift):
    assert recent_shift(*_world(shift=shift, seed=1)) == pytest.approx(shift, abs=0.2)


def test_a_few_deals_cannot_move_it_far_and_nothing_moves_nothing():
    p, elapsed, phase, won, deal, timing = _world(shift=2.0, seed=2, deals=20)
    assert 0 < recent_shift(p, elapsed, phase, won, deal, timing) < 1.5  # the prior holds it
    empty = [a[:0] for a in (p, elapsed, phase, won, deal)]
    assert recent_shift(*empty, timing) == 0.0


def test_a_quarter_end_rush_is_not_read_as_a_change():
    # given wins that bunch up in a quarter's last week: a snapshot taken 10 days before the
    # quarter ends sees its wins come within 10 days, one taken 60 days before waits 50 days
    rng = np.random.default_rng(3)
    phase = rng.uniform(0, 91, 20_000)
    p = rng.uniform(0.1, 0.6, 20_000)
    won = rng.random(20_000) < p
    rush = np.maximum(phase - rng.uniform(0, 7, 20_000), 0.5)  # days to the quarter's last week
    days = np.where(rush < HORIZON, rush, rng.uniform(0, HORIZON, 20_000))
    timing = win_timing(p[won], days[won], phase[won])
    # when the recent snapshots (the same business, nothing changed) all sit just before a
    # quarter's end, so most of their wins are already in
    recent_phase = rng.uniform(8, 20, 3000)
    recent_p = rng.uniform(0.1, 0.6, 3000)
    elapsed = rng.uniform(8, 25, 3000)
    arrives = np.maximum(recent_phase - rng.uniform(0, 7, 3000), 0.5)
    won_so_far = (rng.random(3000) < recent_p) & (arrives <= elapsed)
    deal = np.arange(3000).astype(str)
    # then the early wins are read against wins that arrived the same way: no change
    shift = recent_shift(recent_p, elapsed, recent_phase, won_so_far, deal, timing)
    assert abs(shift) < 0.15
    # while without the calendar (every labelled win read as arriving at any time) it would
    # have seen a jump
    blind = win_timing(p[won], days[won], np.zeros(won.sum()))
    blind_shift = recent_shift(recent_p, elapsed, np.zeros(3000), won_so_far, deal, blind)
    assert blind_shift > 0.4
