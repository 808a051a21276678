"""Forecasts for a period: the model's (win within the period), the reps', the actual."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.features import build_features
from dealscore.features.asof import tables_as_of
from dealscore.features.horizon import MIN_SLIPS, close_by
from dealscore.io import read_export
from dealscore.jobs.compare import last_closed_periods, period_bounds, run_backtest
from dealscore.jobs.train import TrainSettings

DAY_US = 86_400_000_000


def test_a_period_is_a_calendar_quarter():
    start, end = period_bounds("2026q3")
    assert (start, end) == (
        pd.Timestamp("2026-07-01", tz="UTC"),
        pd.Timestamp("2026-10-01", tz="UTC"),
    )
    with pytest.raises(ValueError, match="like 2026Q3"):
        period_bounds("Q3 of 2026")


def test_closing_in_time_is_the_share_of_slips_that_fit():
    # given won deals that closed 5 days early, on time, 5 and 20 days late, in equal numbers
    slips = np.sort(np.repeat([-5.0, 0.0, 5.0, 20.0], MIN_SLIPS))
    end = 100 * DAY_US
    expected = np.array([90, 98, 100, 70, np.nan]) * DAY_US  # 10, 2, 0 and 30 days of room
    # then
    np.testing.assert_allclose(close_by(slips, expected, end), [0.75, 0.5, 0.25, 1.0, np.nan])
    # and with too little history the horizon is not discounted
    assert close_by(slips[:5], expected[:1], end).tolist() == [1.0]


def test_the_export_as_of_a_past_date_gives_the_same_features(crm):
    # given the export cut back to what was known at T
    tables = read_export(crm).tables
    as_of = pd.Timestamp("2025-11-15", tz="UTC")
    past = tables_as_of(tables, as_of)
    # then deals closed later are open again, nothing dated at or after T is left
    assert (past.opportunities["closed_at"].dropna() < as_of).all()
    assert (past.activities["occurred_at"] < as_of).all()
    # and every feature as of T is what the full export gives as of T
    full = build_features(tables, as_of).set_index("opportunity_id")
    cut = build_features(past, as_of).set_index("opportunity_id")
    pd.testing.assert_frame_equal(full.loc[cut.index], cut, check_exact=False, rtol=1e-9)


def test_backtest_retrains_for_each_period_and_compares_with_the_actual(crm):
    tables = read_export(crm).tables
    periods = last_closed_periods(tables, 2)
    assert periods == ["2025Q4", "2026Q1"]  # the export ends 2026-06-01, inside 2026Q2
    # when
    result = run_backtest(crm, 2, TrainSettings(n_estimators=60, learning_rate=0.1, icp=""))
    table = result.table.set_index("period")
    # then each period has its actual bookings and every forecast, with errors
    assert list(table.index) == periods
    assert (table["actual"] > 0).all() and (table["deals"] > 0).all()
    for forecast in ("model", "rep_commit", "rep_commit_best_case", "rep_weighted"):
        np.testing.assert_allclose(table[f"{forecast}_error"], table[forecast] - table["actual"])
    assert set(result.closer()) == {"rep_commit", "rep_commit_best_case", "rep_weighted"}
