"""Population stability index against the training reference."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.model.drift import population_stability, reference, shift_since_previous


def frame(rng: np.random.Generator, shift: float = 0.0, missing: float = 0.0) -> pd.DataFrame:
    values = rng.normal(shift, 1.0, 20_000)
    values[rng.random(20_000) < missing] = np.nan
    return pd.DataFrame({"x": values, "flag": (rng.random(20_000) < 0.3).astype(float)})


def test_same_population_is_stable_a_shift_is_not():
    rng = np.random.default_rng(1)
    ref = reference(frame(rng), ["x", "flag"])
    same = population_stability(ref, frame(rng))
    moved = population_stability(ref, frame(rng, shift=0.8))
    assert (same < 0.01).all()
    assert moved["x"] > 0.2 and moved["flag"] < 0.01


def test_missing_values_are_a_bin_of_their_own():
    rng = np.random.default_rng(2)
    ref = reference(frame(rng), ["x"])
    assert population_stability(ref, frame(rng, missing=0.3))["x"] > 0.2


def test_scores_are_compared_with_the_previous_run_on_the_deals_scored_both_times():
    # given last week's scores and this week's: the same deals moved a little, a few new ones
    rng = np.random.default_rng(3)
    before = rng.beta(2, 3, 2_000)
    week_on = np.clip(before + rng.normal(0, 0.03, 2_000), 0, 1)
    previous = np.where(rng.random(2_000) < 0.1, np.nan, before)  # new deals: no previous
    # then a week of ordinary movement is quiet, and a model that halves every score is not
    assert shift_since_previous(week_on, previous) < 0.05
    assert shift_since_previous(week_on / 2, previous) > 0.2
    # and with too few deals scored both times there is nothing to say
    assert shift_since_previous(week_on[:40], previous[:40]) is None
