"""Engagement features from the one pass over activities agree with a plain per-snapshot count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.features.activity_pass import group_events
from dealscore.features.build import snapshots_at
from dealscore.features.engagement import NAMES, SENIORITY_RANK, engagement_features
from dealscore.features.pit import Snapshots
from dealscore.features.snapshots import SnapshotSettings, grid_snapshots
from dealscore.schemas import CrmTables
from dealscore.synthetic import GeneratorSettings, generate_crm

EXPORT = pd.Timestamp("2026-03-01", tz="UTC")
DAY = pd.Timedelta(days=1)
TYPES = ("email", "call", "meeting", "demo")


@pytest.fixture(scope="module")
def crm() -> CrmTables:
    settings = GeneratorSettings(deals=400, years=1.5, seed=11, export_date=EXPORT)
    return generate_crm(settings).tables


def rows_of(tables: CrmTables) -> dict[str, pd.DataFrame]:
    """Each deal's activities with the time each became known and usable, in row order."""
    acts = tables.activities.dropna(subset=["opportunity_id"]).copy()
    acts["known"] = acts["created_at"].fillna(acts["occurred_at"])
    acts["usable"] = acts[["known", "occurred_at"]].max(axis=1)
    rank = tables.contacts.set_index("contact_id")["seniority"].map(SENIORITY_RANK)
    acts["rank"] = acts["contact_id"].map(rank).astype(float)
    return {deal: group for deal, group in acts.groupby("opportunity_id", sort=False)}


def latency(seen: pd.DataFrame, all_rows: pd.DataFrame) -> float:
    """Mean hours from the deal's latest outbound touch to each later inbound one."""
    ordered = all_rows.sort_values("usable", kind="stable")
    last_out = ordered["usable"].where(ordered["direction"] == "outbound").ffill()
    reply = (ordered["direction"] == "inbound") & last_out.notna()
    hours = (ordered["usable"] - last_out)[reply & ordered.index.isin(seen.index)]
    return hours.mean() / pd.Timedelta(hours=1) if len(hours) else np.nan


def reference_row(group: pd.DataFrame, t: pd.Timestamp, created: pd.Timestamp) -> dict:
    """Every engagement feature of one snapshot, from masks over the deal's rows."""
    seen = group[group["usable"] < t]
    since = {w: seen[seen["usable"] >= t - w * DAY] for w in (7, 14, 28, 30, 90)}
    out: dict[str, float] = {}
    for w in (7, 30, 90):
        out[f"activities_{w}d"] = len(since[w])
        for kind in TYPES:
            out[f"{kind}s_{w}d"] = int((since[w]["type"] == kind).sum())
    out["days_since_last_activity"] = (t - seen["usable"].max()) / DAY if len(seen) else np.nan
    out["activity_trend_14d"] = len(since[14]) - (len(since[28]) - len(since[14]))
    out["meetings_per_email_90d"] = out["meetings_90d"] / (out["emails_90d"] + 1)
    two_way = seen[(seen["direction"] == "inbound") | (seen["type"] == "meeting")]
    out["days_since_two_way"] = (t - two_way["usable"].max()) / DAY if len(two_way) else np.nan
    directed = since[90][since[90]["direction"].isin(["inbound", "outbound"])]
    inbound = (directed["direction"] == "inbound").sum()
    out["inbound_share_90d"] = inbound / len(directed) if len(directed) else np.nan
    out["response_latency_hours"] = latency(seen, group)
    touched = seen.dropna(subset=["contact_id"])
    out["distinct_contacts"] = touched["contact_id"].nunique()
    out["max_seniority"] = touched["rank"].max()
    seniors = group[group["rank"] >= 3]
    first_senior = seniors["usable"].min() if len(seniors) else None
    out["new_senior_stakeholder_30d"] = float(
        first_senior is not None and t - 30 * DAY <= first_senior < t
    )
    out |= next_steps(
        group, t, (t - created) / DAY, len(two_way[two_way["usable"] >= t - 30 * DAY])
    )
    return out


def next_steps(group: pd.DataFrame, t: pd.Timestamp, age: float, two_way_30d: int) -> dict:
    """Booked steps: known before t and due at or after it, or the last one already past."""
    steps = group[group["type"].isin(["meeting", "call", "demo"])]
    booked = steps[steps["known"] < steps["occurred_at"]]
    due = booked[(booked["known"] < t) & (booked["occurred_at"] >= t)]["occurred_at"]
    past = booked[booked["occurred_at"] < t]["occurred_at"]
    return {
        "next_step_scheduled": float(len(due) > 0),
        "days_to_next_step": (due.min() - t) / DAY if len(due) else np.nan,
        "days_since_next_step_lapsed": (t - past.max()) / DAY
        if len(past) and not len(due)
        else np.nan,
        "stale_no_next_step": float(not len(due) and two_way_30d == 0 and age >= 30),
    }


def reference(tables: CrmTables, snaps: Snapshots) -> pd.DataFrame:
    """The engagement features of each snapshot, one snapshot at a time."""
    groups = rows_of(tables)
    created = tables.opportunities.set_index("opportunity_id")["created_at"]
    empty = next(iter(groups.values())).iloc[:0]
    rows = []
    for code, micros in zip(snaps.deal, snaps.as_of, strict=True):
        deal = snaps.ids[code]
        t = pd.Timestamp(micros, unit="us", tz="UTC")
        rows.append(reference_row(groups.get(deal, empty), t, created[deal]))
    return pd.DataFrame(rows, columns=NAMES)


def assert_same(tables: CrmTables, snaps: Snapshots) -> None:
    got = engagement_features(tables, snaps)
    want = reference(tables, snaps)
    assert list(got.columns) == NAMES
    for name in NAMES:
        np.testing.assert_allclose(
            got[name].to_numpy(float), want[name].to_numpy(float), rtol=1e-9, err_msg=name
        )


def test_one_as_of_for_every_open_deal_matches_the_reference(crm):
    snaps = snapshots_at(crm, EXPORT - 20 * DAY)
    assert len(snaps) > 30
    assert_same(crm, snaps)


def test_many_snapshots_per_deal_match_the_reference(crm):
    grid = grid_snapshots(crm.opportunities, EXPORT, SnapshotSettings(seed=3), 60)
    snaps = snapshots_at(crm, grid[["opportunity_id", "as_of"]].sample(800, random_state=0))
    assert len(np.unique(snaps.deal)) < len(snaps)  # several snapshots of a deal
    assert_same(crm, snaps)


def test_contacts_missing_from_the_contacts_table_still_count(crm):
    # given an export (not held to the contract) whose contacts table lacks a fifth of them
    contacts = crm.contacts.iloc[len(crm.contacts) // 5 :]
    partial = crm.with_tables(contacts=contacts)
    assert (~crm.activities["contact_id"].dropna().isin(contacts["contact_id"])).any()
    # when the features are built, then they match the plain count (those contacts count,
    # with no seniority), as with the full table
    snaps = snapshots_at(partial, EXPORT - 20 * DAY)
    assert_same(partial, snaps)
    assert_same(crm, snaps)


def test_events_group_by_deal_then_time_keeping_row_order_on_ties():
    rng = np.random.default_rng(4)
    deal = rng.integers(-1, 50, 5000)
    time = rng.integers(0, 40, 5000)  # many ties, rows out of time order
    order, starts = group_events(deal, time, 50)
    kept = np.flatnonzero(deal >= 0)
    expected = kept[np.lexsort((kept, time[kept], deal[kept]))]
    np.testing.assert_array_equal(order, expected)
    np.testing.assert_array_equal(starts, np.searchsorted(deal[expected], np.arange(51)))
