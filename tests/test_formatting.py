"""Numbers as people read them, the same in the reasons and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.formatting import NOTHING, ago, day, money, money_texts, pct


@pytest.mark.parametrize(
    ("value", "currency", "said"),
    [
        (830, "", "830"),
        (14_500, "", "14.5k"),
        (1_230_000, "USD", "USD 1.23M"),
        (2_500_000_000, "", "2.5B"),
        (-14_500, "EUR", "-EUR 14.5k"),
        (np.nan, "", NOTHING),
        (None, "USD", NOTHING),
    ],
)
def test_one_amount_reads_as_the_reasons_say_it(value, currency, said):
    # given an amount, when it is written, then it reads with k, M or B and no "nan"
    assert money(value, currency) == said


def test_a_column_of_amounts_is_written_without_a_loop_and_agrees_with_one_at_a_time():
    # given a column of amounts across every unit
    amounts = pd.Series([0.0, 999.0, 1_000.0, 14_499.0, 999_500.0, 3.2e9, 1e16])
    # when the column is written, then each matches the one-amount form
    texts = money_texts(amounts)
    assert texts.tolist() == [money(v) for v in amounts.clip(upper=1e15)]
    assert texts.tolist()[2:5] == ["1k", "14.5k", "1M"]  # three figures, then the unit


def test_shares_dates_and_ages_have_one_form():
    # given shares, dates and ages, when they are written, then each has one plain form
    assert (pct(0.254), pct(0.05, signed=True), pct(-0.001, signed=True)) == ("25%", "+5%", "0%")
    assert pct(float("nan")) == NOTHING
    assert day(pd.Timestamp("2026-11-30 13:00", tz="UTC")) == "2026-11-30"
    assert day(pd.NaT) == NOTHING
    assert (ago(np.nan), ago(0.2), ago(1.0), ago(1234.0)) == (
        "never",
        "today",
        "1 day ago",
        "1,234 days ago",
    )
