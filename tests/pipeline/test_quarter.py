"""The quarter's number, whole: booked, open deals, deals not yet created, a range, the reps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.model.totals import CollectiveError
from dealscore.pipeline.periods import BacktestResult
from dealscore.pipeline.quarter import (
    new_deal_history,
    pace,
    quarter_number,
)
from dealscore.pipeline.quarter import (
    numbers_by_group as quarter_numbers,
)
from dealscore.schemas import CrmTables, Opportunities, validate_tables


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def deals_frame(rows: list[tuple[str, str, str, str | None, float]]) -> CrmTables:
    """(id, created, status, closed, amount) rows through the contract."""
    frame = pd.DataFrame(
        {
            Opportunities.opportunity_id: [r[0] for r in rows],
            Opportunities.created_at: [ts(r[1]) for r in rows],
            Opportunities.status: [r[2] for r in rows],
            Opportunities.closed_at: [ts(r[3]) if r[3] else pd.NaT for r in rows],
            Opportunities.amount: [r[4] for r in rows],
        }
    )
    tables, report = validate_tables(CrmTables(opportunities=frame))
    assert report.ok, report.to_text()
    return tables


def quick_world() -> CrmTables:
    """Three past quarters, each with deals created before and in it, some won within it."""
    rows = [("SEED", "2025-01-01", "lost", "2025-02-01", 1.0)]
    for quarter, start in (("Q2", "2025-04"), ("Q3", "2025-07"), ("Q4", "2025-10")):
        # 4 deals in the 90 days before the quarter's day 10, 2 created after day 10 and won in
        # it (100 and 300), one created after day 10 and won in the next quarter
        base = pd.Period(start, "M").start_time
        for k in range(4):
            day = base - pd.Timedelta(days=20 + 15 * k)
            rows.append((f"{quarter}P{k}", f"{day:%Y-%m-%d}", "lost", f"{base:%Y-%m-%d}", 1.0))
        rows += [
            (
                f"{quarter}N1",
                f"{base + pd.Timedelta(days=20):%Y-%m-%d}",
                "won",
                f"{base + pd.Timedelta(days=40):%Y-%m-%d}",
                100.0,
            ),
            (
                f"{quarter}N2",
                f"{base + pd.Timedelta(days=30):%Y-%m-%d}",
                "won",
                f"{base + pd.Timedelta(days=60):%Y-%m-%d}",
                300.0,
            ),
            (
                f"{quarter}L",
                f"{base + pd.Timedelta(days=80):%Y-%m-%d}",
                "won",
                f"{base + pd.Timedelta(days=100):%Y-%m-%d}",
                5000.0,
            ),
        ]
    return deals_frame(rows)


def test_the_new_part_is_learned_from_past_quarters_at_the_same_point():
    # given past quarters whose deals created after day 10 and won within them brought 400
    tables = quick_world()
    as_of = ts("2026-01-11")  # day 10 of 2026Q1
    # when
    history = new_deal_history(tables, as_of)
    # then each past quarter is read at its own day 10: 400 from new deals, against the deals
    # created in the 90 days before that point (the deal won next quarter is not counted)
    assert list(history["period"]) == ["2025Q4", "2025Q3", "2025Q2"]
    np.testing.assert_allclose(history["new"], 400.0)
    assert (history["pace"] > 0).all()
    np.testing.assert_allclose(history["rate"], 400.0 / history["pace"])


def test_the_new_part_reads_nothing_at_or_after_the_forecast_date():
    # given the export as it stood at as_of, and the same export with later facts: deals
    # created after as_of, a deal open then won later, and a big win in a past quarter's
    # window dated after as_of cannot be (it would be in the future)
    tables = quick_world()
    as_of = ts("2025-11-15")
    later = deals_frame(
        [
            *(
                (
                    r[Opportunities.opportunity_id],
                    f"{r[Opportunities.created_at]:%Y-%m-%d}",
                    r[Opportunities.status],
                    None
                    if pd.isna(r[Opportunities.closed_at])
                    else f"{r[Opportunities.closed_at]:%Y-%m-%d}",
                    r[Opportunities.amount],
                )
                for _, r in tables.opportunities.iterrows()
            ),
            ("FUTURE1", "2025-11-20", "won", "2025-12-01", 9_999.0),
            ("FUTURE2", "2025-11-15", "won", "2025-11-16", 9_999.0),
        ]
    )
    # when
    before = new_deal_history(tables, as_of)
    after = new_deal_history(later, as_of)
    # then what was learned, and the pace it is applied to, are the same
    pd.testing.assert_frame_equal(before, after)
    assert pace(tables, as_of) == pace(later, as_of)
    # and a past quarter is read only if it ended by as_of
    assert "2025Q4" not in set(before["period"])


def steady_world(first: str, last: str) -> CrmTables:
    """A deal created every day from `first` to `last`, each won 20 days later for 100."""
    days = pd.date_range(first, last, freq="D")
    return deals_frame(
        [
            (f"D{k}", f"{day:%Y-%m-%d}", "won", f"{day + pd.Timedelta(days=20):%Y-%m-%d}", 100.0)
            for k, day in enumerate(days)
        ]
    )


def test_a_history_shorter_than_the_pace_window_is_paced_over_the_days_it_covers():
    # given deals created at the same pace (one a day) since 2024-12-01, so that at 2025Q1's
    # start only 31 of the 90 days before it are in the export
    tables = steady_world("2024-12-01", "2025-06-30")
    as_of = ts("2025-04-01")
    # when 2025Q2 is forecast at its start
    history = new_deal_history(tables, as_of)
    number = quarter_number(tables, as_of, open_book([0.5], [True], [None]))
    # then 2025Q1 counts, its pace scaled from 31 covered days to 90: one deal a day either way
    assert history["period"].tolist() == ["2025Q1"]
    assert history["pace"][0] == pytest.approx(90.0)
    assert pace(tables, as_of) == pytest.approx(90.0)
    # and the new part is what 2025Q1's deals created from its start brought within it
    won_in_q1 = history["new"][0]
    assert won_in_q1 == pytest.approx(100.0 * len(pd.date_range("2025-01-01", "2025-03-11")))
    assert number.new == pytest.approx(won_in_q1)
    # given fewer than 30 covered days before the past quarter's point: no pace, no new part
    short = steady_world("2024-12-10", "2025-06-30")
    assert new_deal_history(short, as_of).empty
    assert quarter_number(short, as_of, open_book([0.5], [True], [None])).new == 0.0


def open_book(p: list[float], due: list[bool], category: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "opportunity_id": [f"O{k}" for k in range(len(p))],
            "amount": [1000.0] * len(p),
            "p_win_in_period": p,
            "due": due,
            "rep_category": category,
        }
    )


def test_the_number_adds_booked_open_and_new_with_a_range_and_the_reps_beside_it():
    # given 2026Q1 at day 10: one deal won in it (5000, on 2026-01-09), four open deals, three
    # past quarters
    tables = quick_world()
    as_of = ts("2026-01-11")
    book = open_book(
        [0.5, 0.25, 0.1, 0.9], [True, True, False, False], ["commit", "best_case", "commit", None]
    )
    # when
    number = quarter_number(tables, as_of, book)
    # then booked is what was won in the quarter before as_of, and the open part the sum of
    # amount x P(won before the quarter ends) over every open deal
    assert number.booked == 5000.0
    assert number.open == pytest.approx(1000 * (0.5 + 0.25 + 0.1 + 0.9))
    # and the new part is the pace now times the past quarters' mean rate
    history = new_deal_history(tables, as_of)
    assert number.new == pytest.approx(pace(tables, as_of) * history["rate"].mean())
    assert number.model == pytest.approx(number.booked + number.open + number.new)
    assert number.low <= number.model <= number.high
    # and the reps' rollups count only the deals due in the quarter
    assert number.rep_commit == 5000.0 + 1000.0
    assert number.rep_commit_best_case == 5000.0 + 2000.0


def test_a_wider_spread_widens_the_range_and_one_past_quarter_is_enough_for_new_deals():
    tables = quick_world()
    book = open_book([0.5] * 4, [True] * 4, [None] * 4)
    as_of = ts("2026-01-11")
    narrow = quarter_number(tables, as_of, book, CollectiveError((1.0,) * 8, (0.05,) * 8))
    wide = quarter_number(tables, as_of, book, CollectiveError((1.0,) * 8, (0.5,) * 8))
    # and the factor for what wins close at scales the open part
    discounted = quarter_number(tables, as_of, book, CollectiveError((0.9,) * 8, (0.05,) * 8))
    assert discounted.open == pytest.approx(0.9 * narrow.open)
    assert wide.high - wide.low > narrow.high - narrow.low
    # without rep forecasts there are no rollups
    assert np.isnan(narrow.rep_commit)
    # a record of several quarters says nothing of them; one of a single quarter says so
    assert not any("open deals" in note for note in narrow.notes)
    young = CollectiveError((1.0,) * 8, (0.05,) * 8, ("2025Q4",))
    young_number = quarter_number(tables, as_of, book, young)
    assert any("seen one past quarter end only (2025Q4)" in n for n in young_number.notes)
    seasoned = CollectiveError((1.0,) * 8, (0.05,) * 8, ("2025Q3", "2025Q4"))
    assert not any("open deals" in n for n in quarter_number(tables, as_of, book, seasoned).notes)
    # given a forecast date with one past quarter of history before it: that quarter's rate
    early = quarter_number(tables, ts("2025-07-11"), book)
    history = new_deal_history(tables, ts("2025-07-11"))
    assert history["period"].tolist() == ["2025Q2"]
    assert early.new > 0
    assert early.new == pytest.approx(pace(tables, ts("2025-07-11")) * history["rate"][0])
    assert any("learned from one past quarter only (2025Q2)" in note for note in early.notes)
    # and with none (the 90 days before the last quarter's point start before the first deal)
    earliest = quarter_number(tables, ts("2025-04-11"), book)
    assert earliest.new == 0.0
    assert any("not yet created: not counted" in note for note in earliest.notes)


def test_the_backtest_accuracy_is_ratio_error_bias_and_who_was_closer():
    # given two quarters at week 0: the model 10% high and 10% low, the reps' commit 20% low
    rows = []
    for period, model in (("2026Q1", 110.0), ("2026Q2", 90.0)):
        for name, amount in (
            ("model", model),
            ("model_low", model - 15),
            ("model_high", model + 5),
            ("rep_commit", 80.0),
        ):
            rows.append(
                {
                    "period": period,
                    "week": 0,
                    "as_of": ts("2026-01-01"),
                    "forecast": name,
                    "amount": amount,
                    "actual": 100.0,
                }
            )
    result = BacktestResult(pd.DataFrame(rows), pd.DataFrame())
    # when
    accuracy = result.accuracy().set_index("forecast")
    # then
    assert accuracy.loc["model", "accuracy_ratio"] == pytest.approx(1.0)
    assert accuracy.loc["model", "abs_pct_error"] == pytest.approx(0.10)
    assert accuracy.loc["model", "bias"] == pytest.approx(0.0)
    # errors +10% and -10%: a standard deviation of 0.1 * sqrt(2) over sqrt(2) quarters
    assert accuracy.loc["model", "bias_se"] == pytest.approx(0.1)
    assert accuracy.loc["rep_commit", "bias_se"] == pytest.approx(0.0)
    assert accuracy.loc["model", "in_range"] == 1  # 100 in [95, 115], not in [75, 95]
    assert accuracy.loc["rep_commit", "bias"] == pytest.approx(-0.2)
    assert accuracy.loc["rep_commit", "model_closer"] == 2
    assert accuracy.loc["rep_commit", "in_green"] == 0


def test_by_team_each_uses_its_own_new_deal_rate_only_with_enough_history(monkeypatch):
    # given team A holding the deals created and won within past quarters (and those created
    # before them), team B the deals won only in the next quarter
    monkeypatch.setattr("dealscore.pipeline.quarter.MIN_NEW_WINS", 3)
    tables = quick_world()
    ids = tables.opportunities["opportunity_id"]
    in_b = ids.str.endswith("L") | (ids == "SEED")
    team = pd.Series(np.where(in_b, "B", "A"), index=ids.to_numpy())
    book = open_book([0.25, 0.5], [True, False], ["commit", None])
    book["opportunity_id"] = ["Q4P0", "Q4L"]  # one open deal per team
    as_of = ts("2026-01-11")
    whole = quarter_number(tables, as_of, book)
    # when
    table = quarter_numbers(tables, as_of, book, team, whole).set_index("group")
    # then A learns new deals from its own 4 wins (2025Q3 and Q4); B, with none, at the whole
    # export's rate
    assert table.loc["A", "new_from"] == "own history"
    assert table.loc["B", "new_from"] == "the whole export"
    rate = new_deal_history(tables, as_of)["rate"].mean()
    b_only = tables.with_tables(opportunities=tables.opportunities[in_b])
    assert table.loc["B", "new"] == pytest.approx(pace(b_only, as_of) * rate)
    # and each team's parts are its own deals', and the total row adds them up
    assert table.loc["A", "open"] == pytest.approx(250.0)
    assert table.loc["B", "open"] == pytest.approx(500.0)
    assert table.loc["B", "booked"] == whole.booked  # the 5000 won on 2026-01-09 is B's
    for column in ("booked", "open", "new", "model"):
        assert table.loc["total", column] == pytest.approx(table.loc[["A", "B"], column].sum())
