"""Reasons in a seller's words: the real stage and value, compared with won deals there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.explain.sentences import ANY_STAGE, sentences, won_profile
from dealscore.explain.wording import FLAGS
from dealscore.features import FEATURE_NAMES

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
            ("total_slip_days", -6.0),
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
        "close date pulled in 6 days in all",
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


# Every template with a real value, for a deal in Proposal, against a won profile of twice the
# value (70% for yes/no facts): the sentences a rep reads.
EVERY_TEMPLATE = [
    ("age_days", 23.4, "open 23 days; won deals at this stage: 47"),
    ("age_vs_won_cycle", 0.42, "42% of a typical won deal's whole cycle already gone"),
    ("stage_rank", 3, "in Proposal"),
    ("crm_probability", 0.4, "the CRM's own probability: 40%"),
    ("days_in_stage", 23.4, "in Proposal for 23 days; won deals: 47"),
    ("stage_time_vs_won", 2.5, "in Proposal 2.5x as long as won deals were"),
    ("stage_regressions", 3, "moved back a stage 3 times; won deals at this stage: 6"),
    ("close_date_pushes", 3, "close date pushed 3 times; won deals at this stage: 6"),
    ("total_slip_days", 23.4, "close date slipped 23 days in all"),
    ("close_date_days_out", 23.4, "expected to close in 23 days"),
    ("amount_log", np.log10(1 + 48_200), "deal size 48.2k; won deals at this stage: 96.4k"),
    ("amount_change_pct", -0.15, "amount changed -15% since first quoted"),
    ("late_entry", 1.0, "entered the pipeline at proposal or later"),
    ("days_to_quarter_end", 23.4, "23 days left in the quarter"),
    ("close_in_quarter_last_weeks", 1.0, "close date in the quarter's last 3 weeks"),
    ("moved_into_quarter_end", 1.0, "close date moved into the quarter's last 3 weeks"),
    ("close_date_in_past_quarter", 1.0, "close date still in a quarter that is over"),
    ("days_since_last_activity", 23.4, "last activity 23 days ago; won deals at this stage: 47"),
    ("activity_trend_14d", -2, "activity down by 2 in the last 2 weeks against the 2 before"),
    ("distinct_contacts", 3, "3 people engaged; won deals at this stage: 6"),
    ("max_seniority", 3, "most senior contact: a VP; won deals at this stage: an executive"),
    ("meetings_per_email_90d", 0.8, "0.8 meetings per email in 90 days; won deals: 1.6"),
    ("days_since_two_way", 23.4, "last two-way contact 23 days ago; won deals at this stage: 47"),
    (
        "inbound_share_90d",
        0.42,
        "the prospect started 42% of recent touches; won deals at this stage: 84%",
    ),
    ("response_latency_hours", 3, "the prospect replies in 3 hours on average; won deals: 6"),
    ("new_senior_stakeholder_30d", 1.0, "a VP or executive joined in the last 30 days"),
    ("next_step_scheduled", 1.0, "next step booked; won deals at this stage with one: 70%"),
    ("days_to_next_step", 23.4, "next step in 23 days"),
    (
        "days_since_next_step_lapsed",
        23.4,
        "the last next step passed 23 days ago with nothing new booked",
    ),
    ("stale_no_next_step", 1.0, "stale: nothing booked and no two-way contact in 30 days"),
    ("icp_rule_score", 0.42, "matches 42% of the ideal customer profile"),
    ("lookalike_win_rate", 0.42, "similar accounts win 42% of their deals"),
    ("owner_win_rate", 0.42, "the owner wins 42% of their deals"),
    ("owner_past_deals", 3, "the owner has 3 past deals"),
    ("rep_probability", 0.42, "rep's probability: 42%"),
    ("rep_category_rank", 2, "rep's call: best case"),
    ("rep_category_change_28d", -2, "rep's call moved down 2 levels in 4 weeks"),
    ("days_since_forecast", 23.4, "rep's last forecast 23 days ago"),
    ("forecast_from_earlier_quarter", 1.0, "rep's latest call made in an earlier quarter"),
    ("owner_forecast_bias", -0.12, "the owner's calls run 12% below outcomes"),
    ("meetings_30d", 3, "3 meetings in the last 30 days; won deals: 6"),
    ("demos_7d", 1, "1 demo in the last 7 days; won deals: 2"),
    ("win_rate_industry", 0.42, "deals in this industry win 42%"),
    (
        "won_value_lead_source",
        np.log10(1 + 48_200),
        "a typical won deal in this lead source: 48.2k",
    ),
]


@pytest.mark.parametrize(
    ("name", "value", "expected"), EVERY_TEMPLATE, ids=[r[0] for r in EVERY_TEMPLATE]
)
def test_each_template_reads_as_a_seller_would_say_it(name, value, expected):
    # twice the value (amounts are log10(1 + amount): twice the amount), or 70% for yes/no
    won = 0.7 if name in FLAGS else value + np.log10(2) if name == "amount_log" else 2 * value
    profile = pd.DataFrame({name: [won]}, index=[PROPOSAL])
    assert reasons([(name, value)], profile) == [expected]


def test_every_feature_outside_the_families_has_a_pinned_sentence():
    families = (
        "activities_",
        "emails_",
        "calls_",
        "meetings_",
        "demos_",
        "win_rate_",
        "won_value_",
    )
    pinned = {row[0] for row in EVERY_TEMPLATE}
    assert {n for n in FEATURE_NAMES if not n.startswith(families)} <= pinned
