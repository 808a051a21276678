"""Reasons in a seller's words: the real stage and value, compared with won deals there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.features import FEATURE_NAMES
from dealscore.features.sentences import ANY_STAGE, sentences, won_profile

PROPOSAL = 3
STAGES = {0: "prospecting", 2: "discovery", PROPOSAL: "proposal"}


def reasons(rows: list[tuple[str, float]], profile: pd.DataFrame | None = None) -> list[str]:
    """The sentences for (feature, value) rows of deals in Proposal."""
    names = np.array([r[0] for r in rows], dtype=object)
    values = np.array([r[1] for r in rows], dtype=float)
    return sentences(names, values, np.full(len(rows), float(PROPOSAL)), STAGES, profile).tolist()


@pytest.fixture
def profile() -> pd.DataFrame:
    """Won deals: 12 days in Proposal, 5 people, 80% with a meeting booked, 22k deals."""
    return pd.DataFrame(
        {
            "days_in_stage": [20.0, 12.0],
            "distinct_contacts": [4.0, 5.0],
            "next_step_scheduled": [0.6, 0.8],
            "amount_log": [4.0, np.log10(22_001)],
            "max_seniority": [2.0, 3.0],
        },
        index=[ANY_STAGE, PROPOSAL],
    )


def test_each_sentence_names_the_stage_and_compares_with_won_deals_there(profile):
    out = reasons(
        [
            ("days_in_stage", 40.2),
            ("next_step_scheduled", 0.0),
            ("next_step_scheduled", 1.0),
            ("distinct_contacts", 3.0),
            ("amount_log", np.log10(14_501)),
            ("max_seniority", 2.0),
            ("stage_rank", PROPOSAL),
        ],
        profile,
    )
    assert out == [
        "in Proposal for 40 days; won deals: 12",
        "no meeting booked; won deals at this stage with one: 80%",
        "next step booked; won deals at this stage with one: 80%",
        "3 people engaged; won deals at this stage: 5",
        "deal size 14.5k; won deals at this stage: 22k",
        "most senior contact: a director; won deals at this stage: a VP",
        "in Proposal",
    ]


def test_without_a_profile_the_comparison_is_left_out():
    assert reasons([("days_in_stage", 40.0), ("distinct_contacts", 3.0)]) == [
        "in Proposal for 40 days",
        "3 people engaged",
    ]


def test_no_ranks_codes_or_double_negatives():
    out = reasons(
        [
            ("rep_category_rank", 3.0),
            ("rep_category_rank", 0.0),
            ("owner_forecast_bias", -0.1),
            ("owner_forecast_bias", 0.25),
            ("late_entry", 0.0),
            ("late_entry", 1.0),
            ("stale_no_next_step", 1.0),
            ("amount_change_pct", -0.25),
            ("stage_time_vs_won", 3.3),
        ]
    )
    assert out == [
        "rep's call: commit",
        "rep's call: omitted",
        "the owner's calls run 10% below outcomes",
        "the owner's calls run 25% above outcomes",
        "entered the pipeline before proposal",
        "entered the pipeline at proposal or later",
        "stale: nothing booked and no two-way contact in 30 days",
        "amount changed -25% since first quoted",
        "in Proposal 3.3x as long as won deals were",
    ]


def test_a_missing_value_is_a_fact_too():
    out = reasons([("days_since_two_way", np.nan), ("won_value_size_band", np.nan)])
    assert out == ["no two-way contact yet", "a typical won deal in this size band: not known"]


def test_every_feature_has_words_for_any_value():
    names = np.repeat(np.array(FEATURE_NAMES, dtype=object), 3)
    values = np.tile([0.5, np.nan, 12.0], len(FEATURE_NAMES))
    out = sentences(names, values)
    for text in out:
        assert isinstance(text, str) and text
        assert "nan" not in text and "{" not in text and "as_of" not in text
    assert sentences(np.array([None], dtype=object), np.array([1.0])).tolist() == [None]


def test_the_won_profile_is_per_stage_and_overall():
    # given 30 won and 30 lost rows in each of two stages
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "stage_rank": np.repeat([0.0, 3.0], 60),
            "distinct_contacts": np.r_[np.full(60, 2.0), np.full(60, 6.0)],
            "next_step_scheduled": (rng.random(120) < 0.5).astype(float),
        }
    )
    won = np.tile([True, False], 60)
    # when the profile is learned
    profile = won_profile(frame, won)
    # then each stage with 20+ won rows has its own row; flags are shares of won rows
    assert profile.loc[0, "distinct_contacts"] == 2 and profile.loc[3, "distinct_contacts"] == 6
    assert profile.loc[ANY_STAGE, "distinct_contacts"] == 4
    assert profile.loc[ANY_STAGE, "next_step_scheduled"] == pytest.approx(
        frame.loc[won, "next_step_scheduled"].mean()
    )
    # and a stage with fewer than 20 won rows has none of its own
    assert won_profile(frame.head(30), won[:30]).index.tolist() == [ANY_STAGE]


def test_one_of_a_thing_is_singular():
    out = reasons([("meetings_7d", 1.0), ("distinct_contacts", 1.0), ("days_in_stage", 1.2)])
    assert out == ["1 meeting in the last 7 days", "1 person engaged", "in Proposal for 1 day"]
