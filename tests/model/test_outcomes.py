"""Three outcomes from P(won) and P(no decision | not won)."""

from __future__ import annotations

import numpy as np

from dealscore.model.outcomes import OUTCOMES, outcome_labels, outcome_metrics, three_outcomes


def test_the_three_outcomes_sum_to_one_and_keep_the_win_probability():
    rng = np.random.default_rng(0)
    p, q = rng.random(1000), rng.random(1000)
    out = three_outcomes(p, q)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_array_equal(out[:, 0], p)
    assert (out >= 0).all()


def test_labels_and_metrics_per_outcome():
    # given outcomes drawn from known probabilities
    rng = np.random.default_rng(1)
    truth = three_outcomes(rng.uniform(0.1, 0.6, 20_000), rng.uniform(0.2, 0.8, 20_000))
    drawn = (rng.random(20_000)[:, None] > np.cumsum(truth, axis=1)).sum(axis=1)
    won, no_decision = drawn == 0, drawn == 2
    assert (outcome_labels(won, no_decision) == drawn).all()
    # when the true probabilities and a flat guess are compared
    flat = np.tile(np.bincount(drawn, minlength=3) / len(drawn), (len(drawn), 1))
    table = outcome_metrics(drawn, {"truth": truth, "flat": flat})
    by = table.set_index(["contender", "outcome"])
    # then the truth is calibrated in every outcome and beats the flat guess overall
    for outcome in OUTCOMES:
        assert by.loc[("truth", outcome), "ece"] < 0.02
    multiclass = "all (multiclass Brier)"
    assert by.loc[("truth", multiclass), "brier"] < by.loc[("flat", multiclass), "brier"]
