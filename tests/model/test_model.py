"""The estimator: each rung of the ladder cross-fitted and calibrated, its contract, its
contributions; and the metrics."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from dealscore.features import FEATURE_NAMES, SnapshotSettings, build_features, fit_feature_state
from dealscore.features.snapshots import grid_snapshots
from dealscore.model.estimator import RUNGS, WinProbabilityModel
from dealscore.model.metrics import (
    evaluate,
    expected_calibration_error,
    lift_by_decile,
    reliability_table,
)
from dealscore.model.scorers import LinearScorer
from dealscore.model.split import deal_folds, time_folds
from dealscore.schemas import validate_tables
from dealscore.synthetic import GeneratorSettings, generate_crm

EXPORT = pd.Timestamp("2026-06-01", tz="UTC")
HORIZON = 90.0


@pytest.fixture(scope="module")
def rows():
    tables, _ = validate_tables(
        generate_crm(GeneratorSettings(deals=3000, seed=2, export_date=EXPORT)).tables
    )
    snaps = grid_snapshots(tables.opportunities, EXPORT, SnapshotSettings(every_days=14), HORIZON)
    features = build_features(
        tables, snaps[["opportunity_id", "as_of"]], fit_feature_state(tables, EXPORT)
    )
    return snaps.merge(features, on=["opportunity_id", "as_of"])


@pytest.fixture(scope="module")
def fitted(rows):
    """Every rung, cross-fitted over the same five folds."""
    folds = time_folds(rows["as_of"], HORIZON, k=5)
    return {
        rung: WinProbabilityModel(rung, n_estimators=300, learning_rate=0.08).fit(
            rows[FEATURE_NAMES], rows["label"], folds=folds, sample_weight=rows["weight"]
        )
        for rung in RUNGS
    }


@pytest.mark.parametrize("rung", RUNGS)
def test_each_rung_is_calibrated_out_of_fold_and_learns_what_it_can(rows, fitted, rung):
    # given a rung cross-fitted over time folds
    model = fitted[rung]
    y = rows["label"].to_numpy()
    held = np.isfinite(model.oof_)
    # then nearly every row got an out-of-fold probability, honest on those rows
    assert held.mean() > 0.9
    scores = evaluate(y[held], model.oof_[held])
    assert scores["ece"] < 0.04
    # and every rung but the base rate ranks the deals, the richer ones better
    if rung == "base_rate":
        assert scores["roc_auc"] < 0.6
    else:
        assert scores["roc_auc"] > (0.75 if rung == "crm_rates" else 0.8)
    assert model.calibration_ in ("isotonic", "sigmoid")
    assert (model.best_iteration_ > 0) == (rung == "lightgbm")


@pytest.mark.parametrize("rung", RUNGS)
def test_contributions_add_up_to_the_raw_score(rows, fitted, rung):
    # given any rung, then its base plus a row's credits is that row's raw score, which the
    # calibration turns into the probability (scoring reads reasons and score in one pass)
    model = fitted[rung]
    X = rows[FEATURE_NAMES].head(500)
    credits = model.contributions(X)
    assert credits.shape == (500, len(FEATURE_NAMES))
    np.testing.assert_allclose(model.base_ + credits.sum(axis=1), model.raw_score(X), atol=1e-6)
    np.testing.assert_allclose(
        model.calibrate(model.base_ + credits.sum(axis=1)), model.predict_proba(X)[:, 1]
    )
    # and a linear rung credits each feature its design columns' terms, values missing or far
    # beyond the fitted range included (clipped to it)
    scorer = model.scorer_
    if isinstance(scorer, LinearScorer) and len(scorer.coef_):
        odd = X.copy()
        odd.iloc[::3, ::2] = np.nan
        odd.iloc[1::3, 1::2] = odd.iloc[1::3, 1::2] * 1e3
        np.testing.assert_allclose(
            model.contributions(odd),
            (scorer._design(odd[model.feature_names_in_]) * scorer.coef_) @ scorer.owner_,
            atol=1e-12,
        )
    # and the CRM rung credits only the CRM's own inputs
    if rung == "crm_rates":
        used = {FEATURE_NAMES[j] for j in np.flatnonzero(np.abs(credits).sum(axis=0))}
        assert used and used <= {"stage_rank", "rep_category_rank", "crm_probability"}


def test_a_shift_moves_every_probability_by_the_same_log_odds(rows, fitted):
    model = copy.deepcopy(fitted["logistic_regression"])
    X = rows[FEATURE_NAMES].head(200)
    before = model.predict_proba(X)[:, 1]
    after = model.adjust(0.5).predict_proba(X)[:, 1]
    np.testing.assert_allclose(
        np.log(after / (1 - after)) - np.log(before / (1 - before)), 0.5, atol=1e-6
    )


@pytest.mark.parametrize("rung", RUNGS)
def test_a_refit_correction_keeps_the_win_rate_the_calibration_was_fitted_to(rows, fitted, rung):
    # given a rung cross-fitted, calibrated and refitted as in `fitted`, with the refit correction
    folds = time_folds(rows["as_of"], HORIZON, k=5)
    model = WinProbabilityModel(
        rung, n_estimators=300, learning_rate=0.08, refit_correction=True
    ).fit(rows[FEATURE_NAMES], rows["label"], folds=folds, sample_weight=rows["weight"])
    held = np.isfinite(model.oof_)
    recency, y = folds.recency()[held], rows["label"].to_numpy()[held]
    X = rows[FEATURE_NAMES][held]
    # when it predicts the rows the calibration learned from
    p = model.predict_proba(X)[:, 1]
    # then, weighted as the calibration weighed them, as many wins as those rows had
    assert np.average(p, weights=recency) == pytest.approx(np.average(y, weights=recency), abs=1e-4)
    # which the same rung without it does not give (it keeps its refit as it came)
    plain = fitted[rung].predict_proba(X)[:, 1]
    assert fitted[rung].refit_shift_ == 0.0
    assert abs(np.average(plain, weights=recency) - np.average(y, weights=recency)) > 1e-3
    # and the correction moved every probability by the same log-odds
    gap = np.log(p / (1 - p)) - np.log(plain / (1 - plain))
    np.testing.assert_allclose(gap, model.refit_shift_, atol=1e-6)


def test_scikit_learn_contract(rows, fitted):
    model = WinProbabilityModel(n_estimators=50, calibration="sigmoid")
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict_proba(rows[FEATURE_NAMES])
    folds = time_folds(rows["as_of"], HORIZON, k=4)
    assert model.fit(rows[FEATURE_NAMES], rows["label"], folds=folds) is model
    assert model.calibration_ == "sigmoid"
    assert list(model.classes_) == [0, 1]
    p = model.predict_proba(rows[FEATURE_NAMES])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert set(model.predict(rows[FEATURE_NAMES])) <= {0, 1}
    with pytest.raises(ValueError, match="rung must be one of"):
        WinProbabilityModel("deep_net").fit(  # type: ignore[arg-type]
            rows[FEATURE_NAMES], rows["label"], folds=folds
        )


def test_a_contender_only_judged_is_cross_fitted_without_a_refit(rows):
    # given a rung fitted for its out-of-fold probabilities only
    folds = time_folds(rows["as_of"], HORIZON, k=4)
    model = WinProbabilityModel(n_estimators=50, calibration="sigmoid")
    model.fit(rows[FEATURE_NAMES], rows["label"], folds=folds, refit=False)
    # then it has them, and its rounds, but nothing to score with
    assert np.isfinite(model.oof_).mean() > 0.7 and model.best_iteration_ > 0
    with pytest.raises(NotFittedError):
        model.predict_proba(rows[FEATURE_NAMES])


def test_one_outcome_or_no_usable_fold_is_refused(rows):
    X, as_of = rows[FEATURE_NAMES], rows["as_of"]
    with pytest.raises(ValueError, match="needs both won and not-won rows"):
        WinProbabilityModel("logistic_regression").fit(
            X, np.zeros(len(X)), folds=time_folds(as_of, HORIZON)
        )
    # a horizon as long as the history purges every fold's training rows
    with pytest.raises(ValueError, match="no time fold could be held out"):
        WinProbabilityModel("logistic_regression").fit(
            X, rows["label"], folds=time_folds(as_of, 2000)
        )


def test_metrics_on_known_cases():
    y = np.array([0, 0, 1, 1])
    perfect = evaluate(y, np.array([0.1, 0.2, 0.8, 0.9]))
    assert perfect["roc_auc"] == 1.0 and perfect["pr_auc"] == 1.0
    # a bin predicting 0.5 where half win is perfectly calibrated
    assert expected_calibration_error(np.array([0, 1, 0, 1]), np.full(4, 0.5)) == 0.0
    assert expected_calibration_error(np.array([1, 1, 1, 1]), np.full(4, 0.25)) == pytest.approx(
        0.75
    )
    table = reliability_table(np.array([0, 1, 1]), np.array([0.05, 0.95, 0.95]))
    assert table["count"].tolist() == [1, 2] and table["observed"].tolist() == [0.0, 1.0]
    lift = lift_by_decile(np.array([1] * 10 + [0] * 90), np.linspace(1, 0, 100))
    assert lift.loc[0, "lift"] == pytest.approx(10.0) and len(lift) == 10


def _weekly_rows(column: str) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    """A year of weekly snapshots, 200 deals each: won 40% of the time, but 5% in the week of the
    quarter 6 and in its last week (a pattern no line in the weeks draws)."""
    rng = np.random.default_rng(0)
    dates = pd.date_range("2025-01-03", periods=52, freq="7D", tz="UTC")
    as_of = pd.Series(np.repeat(dates, 200))
    week = np.clip(np.floor((91 - (as_of.dt.dayofyear.to_numpy() - 1) % 91) / 7), 0, 12)
    rate = np.where(np.isin(week, [0, 6]), 0.05, 0.4)
    X = pd.DataFrame({column: week, "noise": rng.normal(size=len(week))})
    return X, (rng.random(len(week)) < rate).astype(int), as_of


def test_the_linear_rung_reads_the_week_of_the_quarter_as_one_level_per_week():
    # given rows whose win rate by week of the quarter is no line, read as the week of the
    # quarter and, for contrast, as any number
    def mean_by_week(column: str) -> pd.Series:
        X, y, as_of = _weekly_rows(column)
        folds = time_folds(as_of, 30.0, k=5)
        model = WinProbabilityModel("logistic_regression").fit(X, y, folds=folds)
        return pd.Series(model.predict_proba(X)[:, 1]).groupby(X[column].to_numpy()).mean()

    # when the linear rung is fitted on each
    levels, line = mean_by_week("quarter_week"), mean_by_week("some_number")
    # then the week of the quarter gets its own rate each week
    assert levels[6] == pytest.approx(0.05, abs=0.03) and levels[0] == pytest.approx(0.05, abs=0.03)
    assert levels[3] == pytest.approx(0.4, abs=0.05) and levels[12] == pytest.approx(0.4, abs=0.05)
    # where a number read as a line cannot give week 6 its own
    assert line[6] > 0.2


def test_the_timed_calibration_gives_each_point_of_the_quarter_its_own_sharpness():
    # given a year of weekly snapshots whose signal matters four times as much in a quarter's
    # last days as at its start (the won-this-quarter model's case: a deal's fate shows late)
    rng = np.random.default_rng(1)
    dates = pd.date_range("2025-01-03", periods=52, freq="7D", tz="UTC")
    as_of = pd.Series(np.repeat(dates, 300))
    days = (91 - (as_of.dt.dayofyear.to_numpy() - 1) % 91).astype(float)
    signal = rng.normal(size=len(days))
    won = rng.random(len(days)) < 1 / (1 + np.exp(-signal * (0.5 + 1.5 * (1 - days / 91))))
    X = pd.DataFrame({"days_to_quarter_end": days, "signal": signal})
    folds = time_folds(as_of, 30.0, k=5)
    # when the linear rung reads them with the days left as its timing, calibrated against them
    model = WinProbabilityModel(
        "logistic_regression", timing=("days_to_quarter_end",), timed_calibration=True
    )
    p = model.fit(X, won.astype(int), folds=folds).predict_proba(X)[:, 1]
    # then strong deals get what they won at the quarter's start and near its end alike
    for band in (days > 77, days < 14):
        strong = band & (signal > 1)
        assert p[strong].mean() == pytest.approx(won[strong].mean(), abs=0.05)
    # and the calibration needs the days left to say anything
    with pytest.raises(ValueError, match="days left"):
        model.calibrate(model.raw_score(X))


def test_blocks_of_deals_predict_one_quarter_out_of_fold_without_extrapolating():
    # given one quarter's weekly snapshots of 400 deals, more often won before its end the
    # earlier in it they are (the won-this-quarter model's rows of a CRM a few months old)
    rng = np.random.default_rng(2)
    dates = pd.date_range("2025-10-03", periods=12, freq="7D", tz="UTC")
    as_of = pd.Series(np.tile(dates, 400))
    days = ((pd.Timestamp("2026-01-01", tz="UTC") - as_of).dt.days).to_numpy(dtype=float)
    deals = pd.Series(np.repeat(np.arange(400), 12))
    won = (rng.random(len(days)) < 0.02 + 0.4 * days / 91).astype(int)
    X = pd.DataFrame({"days_to_quarter_end": days, "noise": rng.normal(size=len(days))})
    # when cross-fitted over blocks of deals
    model = WinProbabilityModel("logistic_regression").fit(
        X, won, folds=deal_folds(deals, as_of, 30.0, k=5)
    )
    # then the out-of-fold probabilities follow the wins through the quarter, its last weeks
    # too (blocks of dates there: 0.25 given in its last two weeks against 0.07 won)
    for band in (days < 14, days > 63):
        assert model.oof_[band].mean() == pytest.approx(won[band].mean(), abs=0.04)
