"""The training job end to end on small exports, without MLflow (tests/jobs/test_tracking.py has it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.features import FEATURE_NAMES
from dealscore.features.forecast import REP_INPUTS
from dealscore.jobs.train import run_train
from dealscore.pipeline.training import (
    DataMinimumError,
    TrainSettings,
    round_progress,
)

MAVEN_MAPPING = Path(__file__).resolve().parents[2] / "examples" / "maven-crm" / "mapping.yaml"
FAST = TrainSettings(n_estimators=200, learning_rate=0.08, icp="", track=False, forward_dates=0)


def test_model_beats_every_baseline_on_the_same_test_rows(crm):
    # when
    result = run_train(crm, FAST)
    overall = result.comparison[result.comparison["segment"] == "all"].set_index("contender")
    # then every contender was scored on the same rows
    assert set(overall.index) == {
        "model",
        "base_rate",
        "crm_rates",
        "logistic_regression",
        "lightgbm",
        "model_without_reps",
        "rep_forecast",
        "rep_category_learned",
        "stage_probability",
        "oracle_creation",
        "oracle_ceiling",
    }
    assert overall["rows"].nunique() == 1
    # and the model is the rung the ladder chose, on the same out-of-fold predictions
    assert result.ladder.chosen in ("logistic_regression", "lightgbm"), result.ladder.reason
    assert overall.loc["model", "log_loss"] == overall.loc[result.ladder.chosen, "log_loss"]
    assert overall.loc["model", "roc_auc"] > overall.loc["rep_forecast", "roc_auc"]
    assert overall.loc["model", "roc_auc"] > overall.loc["stage_probability", "roc_auc"]
    assert overall.loc["model", "brier"] < 0.9 * overall.loc["rep_forecast", "brier"]
    # ~2,000 test rows in 10 bins: sampling noise alone is a few points of ECE
    assert overall.loc["model", "ece"] < 0.08
    assert overall.loc["model", "ece"] < overall.loc["rep_forecast", "ece"]
    assert set(result.comparison["segment"]) == {"all", "early", "mid", "late"}
    # and on generated data no model beats the ceiling in any age band, which rises with age
    bands = result.comparison.set_index(["segment", "contender"])
    for segment in ("early", "mid", "late"):
        assert (
            bands.loc[(segment, "model"), "brier"] > bands.loc[(segment, "oracle_ceiling"), "brier"]
        )
    ceiling_auc = [bands.loc[(s, "oracle_ceiling"), "roc_auc"] for s in ("early", "late")]
    assert ceiling_auc[0] < ceiling_auc[1]
    assert set(result.outcomes["outcome"]) == {"won", "lost", "no_decision", "open"}
    won = result.outcomes.set_index("outcome")["mean_probability"]
    assert won["won"] > won["lost"]


def test_three_outcomes_are_calibrated_per_class_and_say_more_than_a_flat_split(crm):
    # when a model is trained on generated data
    result = run_train(crm, FAST)
    table = result.outcome_metrics.set_index(["contender", "outcome"])
    # then won, lost and no decision are each calibrated on the test rows
    for outcome in ("won", "lost", "no_decision"):
        assert table.loc[("model", outcome), "ece"] < 0.06, outcome
        assert (
            abs(
                table.loc[("model", outcome), "mean_predicted"]
                - table.loc[("model", outcome), "actual"]
            )
            < 0.05
        )
    # and the split is never much worse than by the base rate: on 3,000 deals the no-decision
    # model learns too little, and the validation slice says so (it falls back to the rate)
    multiclass = "all (multiclass Brier)"
    assert (
        table.loc[("model", multiclass), "brier"]
        <= table.loc[("model_won_flat_split", multiclass), "brier"] + 0.003
    )
    assert result.no_decision is not None


def test_an_independent_model_never_reads_the_reps_forecasts(crm):
    # given a model trained with rep_inputs = false
    result = run_train(crm, replace(FAST, rep_inputs=False))
    test = result.test[FEATURE_NAMES]
    # when the reps' inputs it is given change wildly
    other = test.assign(
        **{name: test[name].sample(frac=1, random_state=1).to_numpy() for name in REP_INPUTS}
    )
    # then its probabilities do not move, and the card says what it was trained on
    np.testing.assert_array_equal(
        result.model.predict_proba(test)[:, 1], result.model.predict_proba(other)[:, 1]
    )
    assert "model_without_reps" not in set(result.comparison["contender"])
    # and it still learns something from the CRM alone
    overall = result.comparison[result.comparison["segment"] == "all"].set_index("contender")
    assert overall.loc["model", "roc_auc"] > overall.loc["stage_probability", "roc_auc"]


def test_a_big_history_is_cross_fitted_on_a_deal_sample_and_refitted_on_all(crm):
    # given a cap on the rows cross-fitted below what the export has
    said: list[str] = []
    lean = replace(FAST, crossfit_max_rows=5000, in_quarter_model=False, outcome_model=False)
    # when
    capped = run_train(crm, lean, progress=said.append)
    # then only a sample of the rows gets out-of-fold scores, and the progress says so
    covered = np.isfinite(capped.model.oof_)
    assert 0.2 * 5000 < covered.sum() <= 5000 < len(covered)
    assert any("cross-fitted on a random" in m and "refitted on all" in m for m in said)
    # and the model, refitted on every row, still ranks the newest fold well
    overall = capped.comparison[capped.comparison["segment"] == "all"].set_index("contender")
    assert overall.loc["model", "roc_auc"] > overall.loc["stage_probability", "roc_auc"]


def test_reasons_compare_with_what_won_deals_looked_like(crm):
    # when a model is trained, then it keeps the won deals' typical features per stage
    profile = run_train(crm, FAST).won_profile
    assert profile is not None and -1 in profile.index and len(profile) > 2
    assert 0 < profile.loc[-1, "next_step_scheduled"] < 1
    assert profile.loc[-1, "distinct_contacts"] >= 1


def test_too_little_history_is_refused_with_the_counts(crm):
    with pytest.raises(DataMinimumError, match=r"holding at least 100,000 won and 40 lost"):
        run_train(crm, replace(FAST, min_won=100_000))
    # and so is one too short, with the recipe's one sentence
    with pytest.raises(DataMinimumError, match=r"and 2000 days of history since the first date"):
        run_train(crm, replace(FAST, min_history_days=2000))


def test_maven_trains_with_the_baselines_it_has(maven_dir):
    result = run_train(maven_dir, FAST, mapping=MAVEN_MAPPING)
    contenders = set(result.comparison["contender"])
    # no forecasts, stage history or CRM probability there: no CRM rung, no reps
    assert contenders == {"model", "base_rate", "logistic_regression", "lightgbm"}
    assert "crm_rates" in result.ladder.skipped
    auc = result.comparison.set_index(["segment", "contender"]).loc[("all", "model"), "roc_auc"]
    assert 0.4 < auc < 0.9  # a weak signal, reported as it is


def test_cli_train_prints_the_comparison(crm):
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(crm),
            "--n-estimators",
            "100",
            "--no-track",
            "--forward-dates",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "rep_forecast" in result.output
        and "roc_auc" in result.output
        and "calibration:" in result.output
    )
    # and it says which rung of the ladder scores, and why
    assert "(the rung the data picked)" in result.output
    assert "scored by the " in result.output and "out-of-fold log loss" in result.output


def test_a_second_model_says_how_likely_a_win_is_this_quarter(crm):
    # when
    result = run_train(crm, FAST)
    # then it exists, is evaluated on its own label, and never expects more than winning at all
    assert result.in_quarter is not None
    assert 0.5 < result.in_quarter_metrics["roc_auc"] <= 1.0
    X = result.test  # each model reads its own columns (the room to the quarter's end: one)
    this_quarter = result.in_quarter.predict_proba(X)[:, 1]
    ever = result.model.predict_proba(X)[:, 1]
    assert this_quarter.mean() < ever.mean()
    assert result.in_quarter_metrics["positive_rate"] < result.test["label"].mean()


def test_long_boosting_says_how_far_it_got_at_most_every_15_seconds(crm):
    # given a clock that moves 6 seconds per boosting round
    ticks = iter(range(0, 10_000, 6))
    said: list[str] = []
    report = round_progress(said.append, "win model", every=15.0, clock=lambda: float(next(ticks)))

    # when 10 rounds go by (LightGBM hands a callback this after each round)
    for iteration in range(10):
        report(
            SimpleNamespace(
                iteration=iteration,
                end_iteration=2000,
                evaluation_result_list=[("valid_0", "binary_logloss", 0.41234, False)],
            )
        )
    # then it spoke every third round (18 s apart), saying the round and the validation loss
    assert said == [
        "win model: round 3 of at most 2,000 (binary_logloss 0.4123)",
        "win model: round 6 of at most 2,000 (binary_logloss 0.4123)",
        "win model: round 9 of at most 2,000 (binary_logloss 0.4123)",
    ]
    # and a refit, which evaluates nothing, says what it is doing
    for iteration in range(10, 12):
        report(SimpleNamespace(iteration=iteration, end_iteration=80, evaluation_result_list=[]))
    assert said[-1] == "win model: round 12 of at most 80 (refit on every row)"


def test_training_reports_progress_from_inside_the_boosting(crm, monkeypatch):
    # given a real fit that reports every round (0 s stands in for a slow machine)
    said: list[str] = []
    monkeypatch.setattr("dealscore.pipeline.training.fit.PROGRESS_EVERY_SECONDS", 0.0)
    run_train(
        crm, replace(FAST, in_quarter_model=False, ladder=("lightgbm",)), progress=said.append
    )
    # then the rounds of each model were reported
    assert any(line.startswith("win model (lightgbm): round ") for line in said)
    assert any(line.startswith("no-decision model (lightgbm): round ") for line in said)
