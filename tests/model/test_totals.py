"""How the open deals' sums compared with what they brought at past dates, per point of the quarter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.model.totals import MIN_DATES, QUARTER_POINTS, collective_error, quarter_point


def test_points_of_the_quarter_are_two_week_bands_of_days_left():
    assert quarter_point(np.array([0.0, 6.9, 7.5, 50.0, 90.0, 91.5])).tolist() == [0, 0, 1, 4, 6, 7]
    assert len(QUARTER_POINTS) == 7


def snapshot_rows(days_left: float, dates: int, won_share: list[float]) -> pd.DataFrame:
    """`dates` dates at one point of the quarter, 10 deals of 100 each at p = 0.5; at date k a
    share won_share[k] of them won, each closing at 90 (a 10% discount)."""
    rows = []
    for k in range(dates):
        wins = round(10 * won_share[k])
        for deal in range(10):
            rows.append(
                {
                    "as_of": pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(days=k),
                    "days": days_left,
                    "amount": 100.0,
                    "won_amount": 90.0,
                    "p": 0.5,
                    "y": float(deal < wins),
                }
            )
    return pd.DataFrame(rows)


def error_of(rows: pd.DataFrame):
    return collective_error(
        rows["as_of"],
        *(rows[c].to_numpy() for c in ("days", "amount", "won_amount", "p", "y")),
    )


def test_the_factor_is_what_wins_closed_at_and_the_spread_how_far_dates_strayed():
    # given dates at the start of quarters where half, then a third, then 70% of the deals won
    rows = snapshot_rows(85.0, MIN_DATES, [0.5, 0.3, 0.7, 0.5])
    # when
    error = error_of(rows)
    # then wins closed at 90% of their amount then, at that point and (pooled) everywhere
    factor, spread = error.at(85.0)
    assert factor == pytest.approx(0.9)
    assert error.factor == pytest.approx((0.9,) * 8)
    # and the spread is the standard deviation of log(won / (0.9 x expected)) over the dates
    won = np.array([5, 3, 7, 5]) * 90.0
    floor = 0.01 * 500.0
    expected = float(np.std(np.log((won + floor) / (0.9 * 500.0 + floor)), ddof=1))
    assert spread == pytest.approx(expected)


def test_a_point_with_too_few_dates_gets_what_every_date_says():
    # given many dates near the quarter's start and one near its end with a different story
    start = snapshot_rows(85.0, MIN_DATES, [0.5, 0.3, 0.7, 0.5])
    end = snapshot_rows(3.0, 1, [0.9]).assign(
        as_of=pd.Timestamp("2025-03-28", tz="UTC"), won_amount=100.0
    )
    rows = pd.concat([start, end], ignore_index=True)
    error = error_of(rows)
    # then the end of the quarter borrows the pooled factor rather than its one date's
    pooled = (20 * 90.0 + 9 * 100.0) / (29 * 100.0)
    assert error.at(3.0)[0] == pytest.approx(pooled)
    assert error.at(85.0)[0] == pytest.approx(0.9)


def test_the_record_names_the_quarters_its_dates_lie_in():
    # given dates in the first quarter of 2025 and one in the second
    rows = pd.concat(
        [
            snapshot_rows(85.0, MIN_DATES, [0.5, 0.3, 0.7, 0.5]),
            snapshot_rows(80.0, 1, [0.5]).assign(as_of=pd.Timestamp("2025-04-10", tz="UTC")),
        ],
        ignore_index=True,
    )
    # when / then
    assert error_of(rows).quarters == ("2025Q1", "2025Q2")
    assert error_of(rows[rows["as_of"].dt.month < 4]).quarters == ("2025Q1",)
