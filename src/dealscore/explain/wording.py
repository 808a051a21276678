"""The words of the reasons: per feature, the neutral sentence a seller reads (its template and
how its value is written), what a yes/no fact says either way, and what a missing value means.
explain/sentences.py fills them in."""

from __future__ import annotations

from dealscore.features.build import CATALOGUE

WINDOWS = {"7d": "7 days", "30d": "30 days", "90d": "90 days"}
KINDS = ("activities", "emails", "calls", "meetings", "demos")
SEGMENTS = ("industry", "size_band", "region", "product", "lead_source")

# name -> (template, format). `{v}` is the value, `{stage}` the deal's stage, `{won}` the won
# deals' typical value at that stage (the part from "; won" is dropped when there is none).
# Formats: days, count, percent, ratio, pct_change, money, number, signed, seniority, category.
TEMPLATES: dict[str, tuple[str, str]] = {
    "age_days": ("open {v} days; won deals at this stage: {won}", "days"),
    "age_vs_won_cycle": ("{v} of a typical won deal's whole cycle already gone", "percent"),
    "stage_rank": ("in {stage}", "count"),
    "crm_probability": ("the CRM's own probability: {v}", "percent"),
    "days_in_stage": ("in {stage} for {v} days; won deals: {won}", "days"),
    "stage_time_vs_won": ("in {stage} {v} as long as won deals were", "ratio"),
    "stage_regressions": ("moved back a stage {v} times; won deals at this stage: {won}", "count"),
    "close_date_pushes": ("close date pushed {v} times; won deals at this stage: {won}", "count"),
    "close_date_days_out": ("expected to close in {v} days", "days"),
    "amount_log": ("deal size {v}; won deals at this stage: {won}", "money"),
    "amount_change_pct": ("amount changed {v} since first quoted", "pct_change"),
    "days_to_quarter_end": ("{v} days left in the quarter", "days"),
    "days_since_last_activity": (
        "last activity {v} days ago; won deals at this stage: {won}",
        "days",
    ),
    "distinct_contacts": ("{v} people engaged; won deals at this stage: {won}", "count"),
    "max_seniority": ("most senior contact: {v}; won deals at this stage: {won}", "seniority"),
    "meetings_per_email_90d": ("{v} meetings per email in 90 days; won deals: {won}", "number"),
    "days_since_two_way": (
        "last two-way contact {v} days ago; won deals at this stage: {won}",
        "days",
    ),
    "inbound_share_90d": (
        "the prospect started {v} of recent touches; won deals at this stage: {won}",
        "percent",
    ),
    "response_latency_hours": (
        "the prospect replies in {v} hours on average; won deals: {won}",
        "count",
    ),
    "days_to_next_step": ("next step in {v} days", "days"),
    "days_since_next_step_lapsed": (
        "the last next step passed {v} days ago with nothing new booked",
        "days",
    ),
    "icp_rule_score": ("matches {v} of the ideal customer profile", "percent"),
    "lookalike_win_rate": ("similar accounts win {v} of their deals", "percent"),
    "owner_win_rate": ("the owner wins {v} of their deals", "percent"),
    "owner_past_deals": ("the owner has {v} past deals", "count"),
    "rep_probability": ("rep's probability: {v}", "percent"),
    "rep_category_rank": ("rep's call: {v}", "category"),
    "days_since_forecast": ("rep's last forecast {v} days ago", "days"),
    **{
        f"{kind}_{window}": (f"{{v}} {kind} in the last {span}; won deals: {{won}}", "count")
        for kind in KINDS
        for window, span in WINDOWS.items()
    },
    **{
        f"win_rate_{segment}": (f"deals in this {segment.replace('_', ' ')} win {{v}}", "percent")
        for segment in SEGMENTS
    },
    **{
        f"won_value_{segment}": (
            f"a typical won deal in this {segment.replace('_', ' ')}: {{v}}",
            "money",
        )
        for segment in SEGMENTS
    },
}
# Yes/no facts: (when 1, when 0); `{won}` is the share of won deals at this stage with it.
FLAGS: dict[str, tuple[str, str]] = {
    "late_entry": (
        "entered the pipeline at proposal or later",
        "entered the pipeline before proposal",
    ),
    "forecast_from_earlier_quarter": (
        "rep's latest call made in an earlier quarter",
        "rep's latest call made this quarter",
    ),
    "close_in_quarter_last_weeks": (
        "close date in the quarter's last 3 weeks",
        "close date before the quarter's last 3 weeks",
    ),
    "moved_into_quarter_end": (
        "close date moved into the quarter's last 3 weeks",
        "close date kept out of a quarter's last 3 weeks",
    ),
    "close_date_in_past_quarter": (
        "close date still in a quarter that is over",
        "close date in this quarter or later",
    ),
    "new_senior_stakeholder_30d": (
        "a VP or executive joined in the last 30 days",
        "no new VP or executive in the last 30 days",
    ),
    "next_step_scheduled": (
        "next step booked; won deals at this stage with one: {won}",
        "no meeting booked; won deals at this stage with one: {won}",
    ),
    "stale_no_next_step": (
        "stale: nothing booked and no two-way contact in 30 days",
        "booked or in two-way contact within 30 days",
    ),
}
# Changes read as up or down, never "-2": (when up, when down, when unchanged).
CHANGES: dict[str, tuple[str, str, str]] = {
    "activity_trend_14d": (
        "activity up by {v} in the last 2 weeks against the 2 before",
        "activity down by {v} in the last 2 weeks against the 2 before",
        "as much activity in the last 2 weeks as in the 2 before",
    ),
    "total_slip_days": (
        "close date slipped {v} days in all",
        "close date pulled in {v} days in all",
        "close date where it was first set",
    ),
    "rep_category_change_28d": (
        "rep's call moved up {v} levels in 4 weeks",
        "rep's call moved down {v} levels in 4 weeks",
        "rep's call unchanged for 4 weeks",
    ),
}
# Signed shares read as "above" or "below", never "-10% above": (before, after) the share.
SIGNED_SHARES: dict[str, tuple[str, str]] = {
    "owner_forecast_bias": ("the owner's calls run ", " outcomes"),
}
DESCRIPTIONS = {feature.name: feature.description for feature in CATALOGUE}
# A missing value often is the fact: no two-way contact has happened yet.
MISSING: dict[str, str] = {
    "days_since_two_way": "no two-way contact yet",
    "days_since_last_activity": "no activity yet",
    "days_since_forecast": "no rep forecast yet",
    "forecast_from_earlier_quarter": "no rep forecast yet",
    "rep_probability": "no rep forecast yet",
    "rep_category_rank": "no rep forecast yet",
    "response_latency_hours": "the prospect has not replied yet",
    "stage_rank": "stage not known to the model",
    "crm_probability": "no CRM probability in the stage history",
    "days_to_next_step": "no next step booked",
    "days_since_next_step_lapsed": "a next step is booked, or none ever was",
    "next_step_scheduled": "bookings not in the export",
    "stale_no_next_step": "bookings not in the export",
    **{
        f"won_value_{s}": f"a typical won deal in this {s.replace('_', ' ')}: not known"
        for s in SEGMENTS
    },
    **{
        name: "activities not in the export"
        for name in (
            *(f"{kind}_{window}" for kind in KINDS for window in WINDOWS),
            "activity_trend_14d",
            "distinct_contacts",
            "meetings_per_email_90d",
        )
    },
    **{f"win_rate_{s}": f"win rate in this {s.replace('_', ' ')}: not known" for s in SEGMENTS},
    "inbound_share_90d": "no inbound or outbound touches in 90 days",
    "age_days": "age not known",
    "age_vs_won_cycle": "no won deals yet to compare its age with",
    "days_in_stage": "time in stage not known",
    "stage_time_vs_won": "no won deals yet to compare its time in stage with",
    "stage_regressions": "stage history not in the export",
    "close_date_pushes": "close-date history not in the export",
    "total_slip_days": "close-date history not in the export",
    "close_date_days_out": "no expected close date",
    "amount_log": "no amount",
    "amount_change_pct": "amount history not in the export",
    "late_entry": "first stage not known",
    "days_to_quarter_end": "quarter end not known",
    "close_in_quarter_last_weeks": "no expected close date",
    "moved_into_quarter_end": "close-date history not in the export",
    "close_date_in_past_quarter": "no expected close date",
    "new_senior_stakeholder_30d": "contacts' seniority not in the export",
    "icp_rule_score": "the account's profile is not in the export",
    "lookalike_win_rate": "no similar accounts to compare with",
    "owner_win_rate": "the owner's record not known",
    "owner_past_deals": "the owner's record not known",
    "owner_forecast_bias": "the owner's past calls not known",
    "rep_category_change_28d": "no rep forecast 4 weeks ago",
    "max_seniority": "no contact engaged yet",
}
