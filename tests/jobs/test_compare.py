"""Forecasts for a period: the model's (win within the period), the reps', the actual."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.features import build_features
from dealscore.features.asof import tables_as_of
from dealscore.features.horizon import MIN_SLIPS, close_by
from dealscore.io import read_export
from dealscore.jobs.compare import run_backtest
from dealscore.pipeline.periods import last_closed_periods, period_bounds
from dealscore.pipeline.training import TrainSettings

DAY_US = 86_400_000_000


def test_a_period_is_a_calendar_quarter():
    start, end = period_bounds("2026q3")
    assert (start, end) == (
        pd.Timestamp("2026-07-01", tz="UTC"),
        pd.Timestamp("2026-10-01", tz="UTC"),
    )
    with pytest.raises(ValueError, match="like 2026Q3"):
        period_bounds("Q3 of 2026")


def slips(values, lead, observed=True, weight=1.0) -> pd.DataFrame:
    values = np.asarray(values, dtype=float)
    return pd.DataFrame(
        {"slip": values, "observed": observed, "lead": float(lead), "weight": weight}
    )


def test_closing_in_time_is_the_share_of_slips_that_fit():
    # given won deals expected a week ahead that closed 5 days early, on time, 5 and 20 days
    # late, and deals expected months ahead that all closed 60 days late
    near = slips(np.repeat([-5.0, 0.0, 5.0, 20.0], MIN_SLIPS), lead=7)
    history = pd.concat([near, slips(np.full(MIN_SLIPS, 60.0), lead=120)], ignore_index=True)
    as_of, end = 85 * DAY_US, 100 * DAY_US
    expected = np.array([90, 98, 100, 70, np.nan]) * DAY_US  # 10, 2, 0 and 30 days of room
    # then deals expected soon slip like deals expected soon did
    np.testing.assert_allclose(
        close_by(history, expected, end, as_of), [0.75, 0.5, 0.25, 1.0, np.nan]
    )
    # and one expected months ahead like those did: 60 days late does not fit 50 days of room
    far = close_by(history, np.array([150.0]) * DAY_US, 200 * DAY_US, 20 * DAY_US)
    assert far.tolist() == [0.0]
    # and with too little history the horizon is not discounted
    assert close_by(near.head(5), expected[:1], end, as_of).tolist() == [1.0]


def test_deals_still_open_count_as_slipping_at_least_so_far():
    # given half the deals won on time and half still open 30 days past their expected close
    won = slips(np.zeros(MIN_SLIPS * 2), lead=7)
    still_open = slips(np.full(MIN_SLIPS * 2, 30.0), lead=7, observed=False)
    as_of, end = 0, 10 * DAY_US
    expected = np.array([0.0])  # due today, 10 days of room
    # then leaving the open ones out would say "always on time"; counting them does not
    assert close_by(won, expected, end, as_of).tolist() == [1.0]
    assert close_by(pd.concat([won, still_open]), expected, end, as_of) == pytest.approx([0.5])


def test_the_export_as_of_a_past_date_gives_the_same_features(crm):
    # given the export cut back to what was known at T
    tables = read_export(crm).tables
    as_of = pd.Timestamp("2025-11-15", tz="UTC")
    past = tables_as_of(tables, as_of)
    # then deals closed later are open again, nothing known at or after T is left (a meeting
    # booked before T for after it stays: it was on the calendar at T)
    assert (past.opportunities["closed_at"].dropna() < as_of).all()
    acts = past.activities
    assert (acts["created_at"].fillna(acts["occurred_at"]) < as_of).all()
    assert (acts["occurred_at"] >= as_of).any()
    # and every feature as of T is what the full export gives as of T
    full = build_features(tables, as_of).set_index("opportunity_id")
    cut = build_features(past, as_of).set_index("opportunity_id")
    pd.testing.assert_frame_equal(full.loc[cut.index], cut, check_exact=False, rtol=1e-9)


def test_backtest_retrains_for_each_period_and_compares_with_the_actual(crm):
    tables = read_export(crm).tables
    periods = last_closed_periods(tables, 2)
    assert periods == ["2025Q4", "2026Q1"]  # the export ends 2026-06-01, inside 2026Q2
    # when
    said: list[str] = []
    result = run_backtest(
        crm, 2, TrainSettings(n_estimators=60, learning_rate=0.1, icp=""), progress=said.append
    )
    # (each quarter's training says what it is doing, marked with the quarter, and fits only
    # the models a quarter's forecast needs)
    assert any(line.startswith("2025Q4: win model: cross-fitting") for line in said)
    assert not any("no-decision model" in line for line in said)
    wide = result.wide()
    # then each period is forecast at every week of the quarter, against its total bookings
    assert list(wide["period"].unique()) == periods
    assert sorted(wide["week"].unique()) == [0, 2, 4, 6, 8, 10, 12]
    assert (wide["actual"] > 0).all()
    for period in periods:
        start, end = period_bounds(period)
        deals = tables.opportunities
        won = (
            (deals["status"] == "won") & (deals["closed_at"] >= start) & (deals["closed_at"] < end)
        )
        np.testing.assert_allclose(
            wide.loc[wide["period"] == period, "actual"], deals.loc[won, "amount"].sum()
        )
        # and each week's date is that many weeks into the quarter
        at = wide[wide["period"] == period]
        assert (at["as_of"] == start + pd.to_timedelta(7 * at["week"], unit="D")).all()
    # and the model's number is its parts, inside its range; the reps' rollups are there
    np.testing.assert_allclose(
        wide["model"], wide["booked"] + wide["model_open"] + wide["model_new"]
    )
    assert ((wide["model_low"] <= wide["model"]) & (wide["model"] <= wide["model_high"])).all()
    assert (wide["rep_commit"] <= wide["rep_commit_best_case"]).all()
    # and what is booked grows through the quarter, from nothing at its start
    assert (wide.loc[wide["week"] == 0, "booked"] == 0).all()
    assert (wide.groupby("period")["booked"].diff().dropna() >= 0).all()
    accuracy = result.accuracy()
    assert set(accuracy["forecast"]) == {"model", "rep_commit", "rep_commit_best_case"}
    assert (accuracy["quarters"] == 2).all()


def test_cli_backtest_prints_accuracy_per_week_and_writes_every_forecast(crm, tmp_path):
    config = tmp_path / "fast.toml"
    config.write_text('n_estimators = 40\nlearning_rate = 0.2\nicp = ""\n')
    out = tmp_path / "replay.csv"
    # when
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "--data",
            str(crm),
            "--periods",
            "1",
            "--config",
            str(config),
            "--weeks",
            "0,4,8",
            "--out",
            str(out),
        ],
    )
    # then it prints the quarter's parts and the accuracy per week
    assert result.exit_code == 0, result.output
    assert "2026Q1" in result.output and "not yet created" in result.output
    assert "accuracy per week over 1 quarter" in result.output
    assert "forecast/actual" in result.output and "model closer" in result.output
    assert "bias se" in result.output  # "-" over one quarter
    # and the CSV holds one row per week and forecast, from which the table can be recomputed
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["period", "week", "as_of", "forecast", "amount", "actual"]
    assert sorted(frame["week"].unique()) == [0, 4, 8]
    assert {"model", "rep_commit", "rep_commit_best_case", "model_low", "model_high"} <= set(
        frame["forecast"]
    )
    model = frame[frame["forecast"] == "model"].set_index("week")
    assert (model["period"] == "2026Q1").all()
    # and a bad week list is refused before any work
    bad = CliRunner().invoke(app, ["backtest", "--data", str(crm), "--weeks", "0,20"])
    assert bad.exit_code == 2 and "--weeks" in bad.output


def test_a_period_without_enough_history_is_skipped_with_the_reason(crm, tmp_path):
    # given a recipe that needs more history than the export had before 2025Q4 (its history
    # starts in 2023-07: 820 days before 2025Q4, 910 before 2026Q1)
    config = tmp_path / "long.toml"
    config.write_text(
        'n_estimators = 40\nlearning_rate = 0.2\nicp = ""\nmin_history_days = 870.0\n'
    )
    # when
    result = CliRunner().invoke(
        app, ["backtest", "--data", str(crm), "--periods", "2", "--config", str(config)]
    )
    # then that period is skipped and said so, and the next one is still forecast
    assert result.exit_code == 0, result.output
    assert "2025Q4: skipped: " in result.output
    assert "min_history_days" in result.output  # the reason names the setting to change
    assert "2026Q1" in result.output and "accuracy per week" in result.output
    # and with no period to train on, the command fails with every reason
    config.write_text(
        'n_estimators = 40\nlearning_rate = 0.2\nicp = ""\nmin_history_days = 1000.0\n'
    )
    result = CliRunner().invoke(
        app, ["backtest", "--data", str(crm), "--periods", "2", "--config", str(config)]
    )
    assert result.exit_code == 2
    assert "no period had enough history" in result.output and "2026Q1" in result.output
