"""The model ladder: the data picks the rung; a richer rung must earn its place."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.features import FEATURE_NAMES
from dealscore.model.estimator import WinProbabilityModel
from dealscore.model.ladder import choose, fit_ladder
from dealscore.model.split import time_folds


def test_a_richer_rung_is_chosen_only_when_it_is_clearly_better():
    # given out-of-fold probabilities of three rungs on 4,000 rows of 400 deals
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.05, 0.95, 4000)
    y = (rng.random(4000) < truth).astype(int)
    groups = np.repeat(np.arange(400), 10)
    flat = np.full(4000, y.mean())
    oof = {
        "base_rate": flat,
        "crm_rates": np.clip(truth + rng.normal(0, 0.1, 4000), 0.01, 0.99),
        "lightgbm": np.clip(truth + rng.normal(0, 0.1, 4000), 0.01, 0.99),
    }
    # when chosen
    chosen, losses, reason = choose(y, oof, groups, tolerance=0.002)
    # then the CRM rung beats the base rate by far, and the equally good LightGBM does not
    # replace it: the simpler rung stays
    assert chosen == "crm_rates"
    assert losses["crm_rates"] < losses["base_rate"] - 0.05
    assert "lightgbm out-of-fold log loss" in reason and "not better by more than" in reason
    # while a LightGBM that knows the truth takes over, and says by how much
    oof["lightgbm"] = truth
    chosen, _, reason = choose(y, oof, groups, tolerance=0.002)
    assert chosen == "lightgbm" and "more than the tolerance" in reason


def test_rows_a_rung_could_not_predict_are_left_out_of_the_comparison():
    y = np.array([0, 1] * 50)
    groups = np.arange(100)
    oof = {"base_rate": np.full(100, 0.5), "logistic_regression": np.where(y == 1, 0.9, 0.1)}
    oof["logistic_regression"][:10] = np.nan
    _, losses, reason = choose(y, oof, groups, tolerance=0.0)
    assert "(90 out-of-fold rows)" in reason
    assert losses["base_rate"] == pytest.approx(np.log(2))


def _stage_only(n_deals: int = 600, seed: int = 1) -> pd.DataFrame:
    """Weekly snapshots over a year where only the stage says anything about the outcome."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2025-01-01", periods=52, freq="7D", tz="UTC")
    deal = rng.integers(0, n_deals, 6000)
    stage = rng.integers(0, 5, 6000).astype(float)
    rate = np.array([0.05, 0.15, 0.4, 0.2, 0.7])[stage.astype(int)]  # not monotone
    frame = pd.DataFrame({name: np.nan for name in FEATURE_NAMES}, index=range(6000))
    frame["stage_rank"] = stage
    frame["age_days"] = rng.uniform(1, 200, 6000)  # noise
    frame["activities_30d"] = rng.poisson(4, 6000).astype(float)  # noise
    frame["label"] = (rng.random(6000) < rate).astype(int)
    frame["opportunity_id"] = deal.astype(str)
    frame["as_of"] = dates[rng.integers(0, 52, 6000)]
    return frame


def _fit(frame: pd.DataFrame, **kw):
    folds = time_folds(frame["as_of"], 28, k=5)
    return fit_ladder(
        frame[FEATURE_NAMES],
        frame["label"].to_numpy(),
        folds,
        np.ones(len(frame)),
        frame["opportunity_id"].to_numpy(),
        lambda rung: WinProbabilityModel(rung, n_estimators=200, learning_rate=0.1),
        **kw,
    )


def test_when_only_the_stage_matters_the_stage_rung_scores():
    # given a history where only the (non-monotone) stage tells wins apart
    frame = _stage_only()
    # when the ladder is fitted
    ladder = _fit(frame)
    # then the CRM's own rung is chosen: nothing richer is clearly better
    assert ladder.chosen == "crm_rates", ladder.reason
    assert list(ladder.models) == ["base_rate", "crm_rates", "logistic_regression", "lightgbm"]
    assert ladder.simpler() == ["base_rate"]
    # and every rung predicts; "model" is the chosen one
    predicted = ladder.predict(frame[FEATURE_NAMES].head(5))
    np.testing.assert_array_equal(predicted["model"], predicted["crm_rates"])


def test_a_rung_the_export_cannot_feed_is_skipped_and_stood_in_for():
    # given the same history without the stage: nothing the CRM rung could read
    frame = _stage_only().assign(stage_rank=np.nan)
    # when
    ladder = _fit(frame, rungs=("base_rate", "crm_rates", "logistic_regression"))
    # then the CRM rung is skipped with the reason, and the base rate stands in for it
    assert "crm_rates" not in ladder.models
    assert "no stage, forecast category or CRM probability" in ladder.skipped["crm_rates"]
    every = ladder.predict(frame[FEATURE_NAMES].head(5), every=True)
    np.testing.assert_array_equal(every["crm_rates"], every["base_rate"])
    assert "lightgbm" in every  # stood in for by the richest rung fitted


@pytest.mark.parametrize("rung", ["base_rate", "crm_rates"])
def test_the_simplest_rungs_read_the_timing_features_they_are_given(rung):
    # given a history where winning within the quarter depends on the stage and the days left
    frame = _stage_only()
    rng = np.random.default_rng(2)
    frame["days_to_quarter_end"] = rng.uniform(0, 91, len(frame))
    rate = 0.05 + 0.6 * frame["days_to_quarter_end"].to_numpy() / 91
    frame["label"] = (rng.random(len(frame)) < rate).astype(int)
    folds = time_folds(frame["as_of"], 28, k=5)
    fitted = {}
    for timing in ((), ("days_to_quarter_end",)):
        # when the rung is fitted with and without the days left as a timing feature
        model = WinProbabilityModel(rung, timing=timing)
        fitted[timing] = model.fit(frame[FEATURE_NAMES], frame["label"].to_numpy(), folds=folds)
    # then only the one given it tells a quarter's start from its end
    start, end = frame[FEATURE_NAMES].head(1).copy(), frame[FEATURE_NAMES].head(1).copy()
    start["days_to_quarter_end"], end["days_to_quarter_end"] = 88.0, 3.0
    with_days = fitted[("days_to_quarter_end",)]
    without = fitted[()]
    assert with_days.predict_proba(start)[0, 1] > with_days.predict_proba(end)[0, 1] + 0.3
    assert without.predict_proba(start)[0, 1] == pytest.approx(without.predict_proba(end)[0, 1])
