"""Plain words for a feature's value, as a reason: "no two-way contact in 23 days".

Templates are neutral (they state the fact); whether it raised or lowered the score is the
factor's side. `{}` takes the formatted value; a feature without a template falls back to its
catalogue description and value. Vectorised: one string operation per (feature, template).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.features.build import CATALOGUE

WINDOWS = {"7d": "7 days", "30d": "30 days", "90d": "90 days"}
KINDS = ("activities", "emails", "calls", "meetings", "demos")

# name -> (template, format): days / count / percent / pct_change / log_money / number / flag
TEMPLATES: dict[str, tuple[str, str]] = {
    "age_days": ("open for {} days", "days"),
    "age_vs_won_cycle": ("{} of a typical won deal's cycle so far", "percent"),
    "stage_rank": ("at stage {} of the usual order", "count"),
    "days_in_stage": ("{} days in the current stage", "days"),
    "stage_time_vs_won": ("{} of the time won deals spent in this stage", "percent"),
    "stage_regressions": ("moved back a stage {} times", "count"),
    "close_date_pushes": ("close date pushed {} times", "count"),
    "total_slip_days": ("close date slipped {} days in all", "days"),
    "close_date_days_out": ("expected to close in {} days", "days"),
    "amount_log": ("deal size {}", "log_money"),
    "amount_change_pct": ("amount changed {} since first quoted", "pct_change"),
    "late_entry": ("entered the pipeline late (proposal or later)", "flag"),
    "days_to_quarter_end": ("{} days to quarter end", "days"),
    "close_in_quarter_last_weeks": ("close date in the last 3 weeks of a quarter", "flag"),
    "moved_into_quarter_end": ("close date moved into the quarter's last 3 weeks", "flag"),
    "days_since_last_activity": ("no activity in {} days", "days"),
    "activity_trend_14d": ("activity change over two weeks: {}", "number"),
    "distinct_contacts": ("{} contacts engaged", "count"),
    "max_seniority": ("most senior contact level {} of 4", "count"),
    "meetings_per_email_90d": ("{} meetings per email (90 days)", "number"),
    "days_since_two_way": ("no two-way contact in {} days", "days"),
    "inbound_share_90d": ("{} of recent touches started by the prospect", "percent"),
    "response_latency_hours": ("prospect replies after {} hours on average", "count"),
    "new_senior_stakeholder_30d": ("a VP or executive joined in the last 30 days", "flag"),
    "icp_rule_score": ("matches {} of the documented ICP", "percent"),
    "lookalike_win_rate": ("look-alike accounts win {} of deals", "percent"),
    "owner_win_rate": ("owner wins {} of deals", "percent"),
    "owner_past_deals": ("owner has {} past deals", "count"),
    "rep_probability": ("rep's call: {}", "percent"),
    "rep_category_rank": ("rep's category level {} of 3 (3 = commit)", "count"),
    "rep_category_change_28d": ("rep's category moved {} levels in 4 weeks", "number"),
    "days_since_forecast": ("last rep forecast {} days ago", "days"),
    "owner_forecast_bias": ("owner's calls run {} above outcomes", "percent"),
    **{
        f"{kind}_{window}": (f"{{}} {kind} in the last {span}", "count")
        for kind in KINDS
        for window, span in WINDOWS.items()
    },
    **{
        f"win_rate_{segment}": (f"deals in this {segment.replace('_', ' ')} win {{}}", "percent")
        for segment in ("industry", "size_band", "region", "product", "lead_source")
    },
    **{
        f"won_value_{segment}": (
            f"typical won deal in this {segment.replace('_', ' ')}: {{}}",
            "log_money",
        )
        for segment in ("industry", "size_band", "region", "product", "lead_source")
    },
}
DESCRIPTIONS = {feature.name: feature.description for feature in CATALOGUE}
# A missing value often is the fact: no two-way contact has happened yet.
MISSING: dict[str, str] = {
    "days_since_two_way": "no two-way contact yet",
    "days_since_last_activity": "no activity yet",
    "days_since_forecast": "no rep forecast yet",
    "rep_probability": "no rep forecast yet",
    "rep_category_rank": "no rep forecast yet",
    "response_latency_hours": "the prospect has not replied yet",
    "stage_rank": "stage not known to the model",
}


def _format(values: np.ndarray, kind: str) -> pd.Series:
    v = pd.Series(values, dtype=float)
    if kind in ("days", "count"):
        text = v.round().astype("Int64").astype("str")
    elif kind == "percent":
        text = (v * 100).round().astype("Int64").astype("str") + "%"
    elif kind == "pct_change":
        text = (v * 100).round().astype("Int64").map("{:+d}%".format, na_action="ignore")
    elif kind == "log_money":
        text = (10**v).round(-2).astype("Int64").map("{:,}".format, na_action="ignore")
    else:
        text = v.round(2).astype("str")
    return text


def sentences(features: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A reason per (feature name, value) pair; None where the feature is None."""
    out = np.full(len(features), None, dtype=object)
    names = pd.Series(features, dtype=object)
    for name, rows in names.groupby(names, sort=False).groups.items():
        at = np.asarray(rows)
        template, kind = TEMPLATES.get(name, (f"{DESCRIPTIONS.get(name, name)}: {{}}", "number"))
        if kind == "flag":
            out[at] = template if "{}" not in template else template.format("yes")
            continue
        head, _, tail = template.partition("{}")
        known = ~np.isnan(values[at])
        fallback = (
            template.replace("{}", "not known")
            if template.endswith(": {}")
            else f"{DESCRIPTIONS.get(name, name)}: not known"
        )
        out[at[~known]] = MISSING.get(name, fallback)
        if known.any():
            text = head + _format(values[at[known]], kind).astype(str) + tail
            out[at[known]] = text.to_numpy(dtype=object)
    return out
