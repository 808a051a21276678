"""The DuckDB reference of benchmarks/features.py (benchmarks/duckdb_reference.py) computes the
engagement features it covers exactly as ours do: on a generated world's training snapshots and
open deals, and on rows at the edges of the point-in-time rule. The benchmark times ours against
it, so a reference that drifted from our definitions would make its ratios meaningless.

It needs duckdb (in the `test` extra); without it these tests skip, except under CI=true, where
that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from dealscore.features import SnapshotSettings
from dealscore.features.build import snapshots_at
from dealscore.features.engagement import engagement_features
from dealscore.features.snapshots import grid_snapshots
from dealscore.schemas import Activities, CrmTables
from dealscore.synthetic import GeneratorSettings, generate_crm

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
EXPORT = pd.Timestamp("2026-11-01", tz="UTC")


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    if importlib.util.find_spec("duckdb") is None:
        reason = "duckdb is not installed: pip install 'dealscore[test]'"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the DuckDB reference tests: {reason}")
        pytest.skip(reason)
    spec = importlib.util.spec_from_file_location(
        "duckdb_reference", BENCHMARKS / "duckdb_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def world() -> CrmTables:
    return generate_crm(
        GeneratorSettings(deals=400, seed=5, export_date=EXPORT, activities_per_deal=28)
    ).tables


def _agree(reference: ModuleType, tables: CrmTables, as_of) -> pd.DataFrame:
    snaps = snapshots_at(tables, as_of)
    ours = engagement_features(tables, snaps)
    theirs = reference.engagement_reference(tables.activities, snaps)
    assert reference.mismatches(ours, theirs) == []
    return theirs


def test_the_reference_equals_ours_on_training_snapshots(reference, world):
    grid = grid_snapshots(world.opportunities, EXPORT, SnapshotSettings(seed=5), 90)
    theirs = _agree(reference, world, grid[["opportunity_id", "as_of"]])
    assert len(theirs) == len(grid)
    assert theirs["activities_90d"].sum() > 0 and theirs["days_since_last_activity"].isna().any()


def test_the_reference_equals_ours_on_open_deals_at_one_date(reference, world):
    theirs = _agree(reference, world, pd.Timestamp("2026-06-01", tz="UTC"))
    assert (theirs["distinct_contacts"] > 0).any()


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_the_reference_follows_the_point_in_time_rule_at_its_edges(reference, tables):
    """O3 as of 2025-06-01: a call exactly 7 days before counts in 7 days; an email exactly at
    as_of does not; a meeting booked ahead counts from when it was logged, one logged after as_of
    not at all; a row without a deal never counts. O1 has no activity before its as_of."""
    rows = [
        # occurred, created, type, deal, contact
        ("2025-05-25", None, "call", "O3", "C1"),
        ("2025-06-01", None, "email", "O3", "C1"),
        ("2025-05-20", "2025-05-31", "meeting", "O3", "C2"),
        ("2025-05-28", "2025-06-02", "email", "O3", "C3"),
        ("2025-05-30", None, "demo", "O3", None),
        ("2025-05-04", "2025-05-03", "email", "O3", "C2"),
        ("2025-04-01", None, "other", "O3", "C1"),
        ("2025-05-31", None, "call", None, "C1"),
        ("2025-02-20", None, "email", "O1", "C1"),
    ]
    activities = pd.DataFrame(
        {
            Activities.occurred_at: [ts(r[0]) for r in rows],
            Activities.created_at: pd.to_datetime([r[1] for r in rows], utc=True),
            Activities.type: [r[2] for r in rows],
            Activities.opportunity_id: pd.Series([r[3] for r in rows], dtype="str"),
            Activities.account_id: "A1",
            Activities.contact_id: pd.Series([r[4] for r in rows], dtype="str"),
            Activities.direction: "outbound",
        }
    )
    edged = tables.with_tables(activities=activities)
    pairs = pd.DataFrame(
        {"opportunity_id": ["O3", "O1"], "as_of": [ts("2025-06-01"), ts("2025-02-15")]}
    )
    theirs = _agree(reference, edged, pairs)
    o3, o1 = theirs.iloc[0], theirs.iloc[1]
    assert (o3["calls_7d"], o3["meetings_7d"], o3["demos_7d"], o3["emails_7d"]) == (1, 1, 1, 0)
    assert (o3["emails_30d"], o3["activities_90d"], o3["distinct_contacts"]) == (1, 5, 2)
    assert o3["days_since_last_activity"] == 1.0
    assert o1["activities_90d"] == 0 and pd.isna(o1["days_since_last_activity"])


def test_the_check_sees_a_difference(reference, world):
    snaps = snapshots_at(world, pd.Timestamp("2026-06-01", tz="UTC"))
    ours = engagement_features(world, snaps)
    theirs = reference.engagement_reference(world.activities, snaps)
    off = ours.copy()
    off.loc[3, "calls_30d"] += 1
    off.loc[5, "days_since_last_activity"] = off["days_since_last_activity"].fillna(0)[5] + 1e-6
    problems = reference.mismatches(off, theirs)
    assert [p.split(":")[0] for p in problems] == ["calls_30d", "days_since_last_activity"]
