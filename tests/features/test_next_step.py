"""Next steps: a meeting booked before as_of for after it, how soon, lapses, stale deals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.features import build_features
from dealscore.features.next_step import NAMES
from dealscore.schemas import validate_tables
from dealscore.schemas.tables import CrmTables

AS_OF = pd.Timestamp("2026-06-01", tz="UTC")


def day(n: float) -> pd.Timestamp:
    """AS_OF moved by n days."""
    return AS_OF + pd.Timedelta(days=n)


def export(activities: list[tuple[str, str, float, float | None]]) -> CrmTables:
    """Three open deals created 60 days before AS_OF and activities (deal, type, occurred day,
    created day or None), validated through the contract."""
    deals = pd.DataFrame(
        {
            "opportunity_id": ["A", "B", "C"],
            "created_at": [day(-60)] * 3,
            "status": "open",
            "closed_at": pd.NaT,
        }
    )
    acts = pd.DataFrame(
        {
            "opportunity_id": [a[0] for a in activities],
            "type": [a[1] for a in activities],
            "occurred_at": [day(a[2]) for a in activities],
            "created_at": [pd.NaT if a[3] is None else day(a[3]) for a in activities],
            "direction": "outbound",
        }
    )
    tables, report = validate_tables(CrmTables(opportunities=deals, activities=acts))
    assert report.ok, report.to_text()
    return tables


def features(tables: CrmTables) -> pd.DataFrame:
    return build_features(tables, AS_OF).set_index("opportunity_id")[NAMES]


def test_a_meeting_booked_before_as_of_for_after_it_is_the_next_step():
    # given A: a meeting booked 3 days ago for in 4 days, and another booked for in 10;
    # B: a meeting booked today (at as_of) for tomorrow; C: one booked 20 days ago that took
    # place 5 days ago, nothing since
    tables = export(
        [
            ("A", "meeting", 4, -3),
            ("A", "demo", 10, -1),
            ("B", "meeting", 1, 0),
            ("C", "meeting", -5, -20),
        ]
    )
    # when features are built as of then
    f = features(tables)
    # then A's next step is in 4 days; B's booking is not known yet; C's lapsed 5 days ago
    assert f.loc["A", "next_step_scheduled"] == 1
    assert f.loc["A", "days_to_next_step"] == pytest.approx(4)
    assert np.isnan(f.loc["A", "days_since_next_step_lapsed"])
    assert f.loc["B", "next_step_scheduled"] == 0
    assert np.isnan(f.loc["B", "days_to_next_step"])
    assert f.loc["C", "next_step_scheduled"] == 0
    assert f.loc["C", "days_since_next_step_lapsed"] == pytest.approx(5)


def test_the_earliest_known_step_counts_not_an_earlier_one_booked_later():
    # given a meeting in 2 days booked after as_of, and one in 6 days booked before it
    tables = export([("A", "meeting", 2, 1), ("A", "call", 6, -2)])
    # then the next step known at as_of is the one in 6 days
    assert features(tables).loc["A", "days_to_next_step"] == pytest.approx(6)


def test_stale_means_nothing_booked_and_no_two_way_touch_in_30_days():
    # given A: only outbound emails lately, nothing booked; B: the same with a call booked;
    # C: a meeting (two-way) 10 days ago, logged when it happened
    tables = export(
        [
            ("A", "email", -3, None),
            ("B", "email", -3, None),
            ("B", "call", 3, -1),
            ("C", "meeting", -10, None),
        ]
    )
    f = features(tables)
    # then only A is stale
    assert f["stale_no_next_step"].to_dict() == {"A": 1.0, "B": 0.0, "C": 0.0}


def test_a_touch_logged_late_counts_from_when_it_was_logged():
    # given a meeting 2 days ago logged only tomorrow, and one 5 days ago logged the same day
    tables = export([("A", "meeting", -2, 1), ("A", "meeting", -5, -5)])
    # then as of today only the second is known: last two-way touch 5 days ago
    built = build_features(tables, AS_OF).set_index("opportunity_id")
    assert built.loc["A", "days_since_two_way"] == pytest.approx(5)
    assert built.loc["A", "meetings_7d"] == 1


def test_without_created_at_next_steps_are_missing_not_zero():
    # given an export whose activities have no created_at column
    tables = export([("A", "meeting", 4, None)])
    tables = tables.with_tables(activities=tables.activities.drop(columns="created_at"))
    # then the next-step features are unknown, and a dated-ahead meeting is not used as a touch
    f = build_features(tables, AS_OF).set_index("opportunity_id")
    assert f[NAMES].isna().all().all()
    assert f.loc["A", "meetings_90d"] == 0
