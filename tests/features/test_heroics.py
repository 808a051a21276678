"""The heroic-win rule: outside the ICP, a deep late discount, pushed over a quarter end."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from dealscore.features.heroics import HeroicsRule, heroic_signals, heroic_wins
from dealscore.features.icp import IcpRule
from dealscore.schemas import CrmTables, StageHistory, validate_tables

RULES = (IcpRule("target_industry", "industry", values=("software",)),)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture
def rescued(tables) -> CrmTables:
    """O1 is won by a retail account (outside the ICP) after a 40% cut a week before its close
    in Q2, having been expected to close in Q1."""
    deals = tables.opportunities.assign(
        account_id=["A2", "A2", "A1"], amount=[600.0, 2500.0, 400.0]
    )
    deals.loc[0, "closed_at"] = ts("2025-04-08")
    history = pd.DataFrame(
        {
            StageHistory.opportunity_id: ["O1", "O1", "O1", "O2"],
            StageHistory.changed_at: [
                ts("2025-01-01"),
                ts("2025-04-01"),
                ts("2025-04-08"),
                ts("2025-02-01"),
            ],
            StageHistory.stage: ["prospecting", "negotiation", "closed_won", "prospecting"],
            StageHistory.amount: [1000.0, 600.0, 600.0, 2500.0],
            StageHistory.close_date: [
                ts("2025-03-20"),
                ts("2025-04-10"),
                ts("2025-04-08"),
                ts("2025-05-01"),
            ],
        }
    )
    coerced, report = validate_tables(
        tables.with_tables(opportunities=deals, stage_history=history)
    )
    assert report.ok, report.to_text()
    return coerced


def test_a_rescued_poor_fit_win_is_flagged(rescued):
    # when
    flagged = heroic_wins(rescued, RULES)
    signals = heroic_signals(rescued, RULES)
    # then only the won deal, on all three signals; lost and open deals are never flagged
    assert flagged.tolist() == [True, False, False]
    assert signals.iloc[0].tolist() == [1.0, 1.0, 1.0]
    assert signals.iloc[1:].isna().all().all()


@pytest.mark.parametrize(
    "change",
    [
        {"max_icp_score": 0.0},  # nothing counts as outside the ICP
        {"min_discount": 0.5},  # a 40% cut is not deep enough
    ],
)
def test_each_signal_is_required(rescued, change):
    assert not heroic_wins(rescued, RULES, replace(HeroicsRule(), **change))[0]


def test_a_discount_given_early_is_not_late(rescued):
    # given the same cut, made three months before the close
    history = rescued.stage_history.copy()
    history.loc[1, StageHistory.changed_at] = ts("2025-01-02")
    history.loc[0, StageHistory.amount] = 600.0
    # then
    assert not heroic_wins(rescued.with_tables(stage_history=history), RULES)[0]


def test_a_win_in_the_quarter_first_expected_is_not_heroic(rescued):
    # given the same deal, always expected in Q2
    history = rescued.stage_history.assign(close_date=ts("2025-04-10"))
    # then
    assert not heroic_wins(rescued.with_tables(stage_history=history), RULES)[0]


def test_without_the_icp_the_other_two_signals_decide(rescued):
    assert heroic_wins(rescued, ())[0]  # ICP unknown: discount and push both hold
    no_history = rescued.with_tables(stage_history=None)
    assert not heroic_wins(no_history, RULES).any()  # one signal alone never flags a deal
