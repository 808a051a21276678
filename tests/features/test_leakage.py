"""Point-in-time correctness: nothing dated at or after as_of may change a feature as of then."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dealscore.features import QUARTER_FEATURE_NAMES, build_features, fit_feature_state, parse_icp
from dealscore.features.baselines import crm_baselines
from dealscore.features.pit import micros, quarter_end_micros
from dealscore.features.snapshots import (
    SnapshotSettings,
    grid_snapshots,
    history_start,
    label_horizon,
    quarter_snapshots,
    recent_snapshots,
)
from dealscore.pipeline.training.rows import with_side_labels, won_in_quarter
from dealscore.schemas import CrmTables, validate_tables
from dealscore.synthetic import GeneratorSettings, generate_crm

EXPORT = pd.Timestamp("2026-03-01", tz="UTC")
SIDE_LABELS = ["label_in_quarter", "label_no_decision", "days_to_win"]
ICP = parse_icp({"rules": [{"name": "sweet", "column": "industry", "in": ["software"]}]})


@pytest.fixture(scope="module")
def full() -> CrmTables:
    tables, report = validate_tables(
        generate_crm(GeneratorSettings(deals=800, seed=21, export_date=EXPORT, years=1.5)).tables
    )
    assert report.ok
    return tables


def before(tables: CrmTables, t: pd.Timestamp) -> CrmTables:
    """The export as it would have looked at t: every row dated at or after t removed."""
    deals = tables.opportunities[tables.opportunities["created_at"] < t].copy()
    closing_later = deals["closed_at"] >= t
    deals.loc[closing_later, "closed_at"] = pd.NaT
    deals.loc[closing_later, "status"] = "open"
    known = set(deals["opportunity_id"])
    timed = {
        "stage_history": "changed_at",
        "activities": "occurred_at",
        "forecasts": "submitted_at",
    }
    cut = {}
    for name, column in timed.items():
        frame = tables.get(name)
        stamp = frame[column]
        if name == "activities":  # known from when it was logged or booked
            stamp = frame["created_at"].fillna(stamp)
        keep = (stamp < t) & (frame["opportunity_id"].isin(known) | frame["opportunity_id"].isna())
        cut[name] = frame[keep]
    return tables.with_tables(opportunities=deals, **cut)


def with_future_noise(tables: CrmTables, t: pd.Timestamp, seed: int) -> CrmTables:
    """Append or change rows dated at or after t: activities (and activities logged or booked
    at or after t for any date), stage moves, forecasts, outcomes."""
    rng = np.random.default_rng(seed)
    deals = tables.opportunities.copy()
    open_at_t = (deals["created_at"] < t) & (deals["closed_at"].isna() | (deals["closed_at"] >= t))
    ids = (
        deals.loc[open_at_t, "opportunity_id"]
        .sample(50, random_state=seed, replace=True)
        .to_numpy()
    )
    when = t + pd.to_timedelta(rng.integers(0, 30 * 86_400, 50), unit="s")
    when = when.where(rng.random(50) > 0.2, t)  # some rows dated exactly at t
    acts = pd.DataFrame(
        {
            "activity_id": [f"NOISE{i}" for i in range(50)],
            "occurred_at": when,
            "type": rng.choice(["email", "meeting", "call", "demo"], 50),
            "opportunity_id": ids,
            "account_id": deals.set_index("opportunity_id").loc[ids, "account_id"].to_numpy(),
            "contact_id": tables.contacts["contact_id"]
            .sample(50, random_state=seed, replace=True)
            .to_numpy(),
            "direction": rng.choice(["inbound", "outbound"], 50),
            "created_at": when,
        }
    )
    # Rows dated before t but logged or booked at or after it: a call logged late, a meeting
    # booked at t for a date before or after it. None was known at t.
    late = acts.assign(
        activity_id=[f"LATE{i}" for i in range(50)],
        occurred_at=when - pd.to_timedelta(rng.integers(1, 20 * 86_400, 50), unit="s"),
        type=rng.choice(["meeting", "call", "demo"], 50),
    )
    ahead = acts.assign(
        activity_id=[f"AHEAD{i}" for i in range(50)],
        occurred_at=when + pd.to_timedelta(rng.integers(0, 20 * 86_400, 50), unit="s"),
        type="meeting",
    )
    acts = pd.concat([acts, late, ahead], ignore_index=True)
    history = pd.DataFrame(
        {
            "opportunity_id": ids,
            "changed_at": when,
            "stage": rng.choice(["prospecting", "negotiation"], 50),
            "amount": rng.uniform(1, 1e6, 50),
            "close_date": when + pd.Timedelta(days=3),
            "forecast_category": "commit",
            "probability": 0.9,
        }
    )
    forecasts = pd.DataFrame(
        {
            "opportunity_id": ids,
            "submitted_at": when,
            "forecast_category": "commit",
            "probability": 1.0,
            "amount": 1.0,
            "period": "2099Q1",
        }
    )
    # The noisy deals close after all that, with made-up outcomes and amounts.
    flip = deals["opportunity_id"].isin(ids)
    later = deals.loc[flip, "closed_at"].fillna(EXPORT).clip(lower=t + pd.Timedelta(days=31))
    deals.loc[flip, "closed_at"] = later + pd.Timedelta(days=1)
    deals.loc[flip, "status"] = rng.choice(["won", "lost"], int(flip.sum()))
    deals.loc[flip, "amount"] = 1.0
    # And a brand-new deal created at t.
    new = deals.iloc[[0]].assign(
        opportunity_id="NEWDEAL", created_at=t, closed_at=pd.NaT, status="open"
    )
    return tables.with_tables(
        opportunities=pd.concat([deals, new], ignore_index=True),
        activities=pd.concat([tables.activities, acts], ignore_index=True),
        stage_history=pd.concat([tables.stage_history, history], ignore_index=True),
        forecasts=pd.concat([tables.forecasts, forecasts], ignore_index=True),
    )


def valid(tables: CrmTables) -> CrmTables:
    """Validated (coerced) tables, as every export is before features are built."""
    validated, report = validate_tables(tables)
    assert report.ok, report.to_text()
    return validated


def time_inside(full: CrmTables, fraction: float, seed: int) -> pd.Timestamp:
    """A time at `fraction` of the history, off whole seconds by `seed` microseconds."""
    first = full.opportunities["created_at"].min()
    return (first + fraction * (EXPORT - first)).floor("s") + pd.Timedelta(microseconds=seed)


def three_views(full: CrmTables, t: pd.Timestamp, seed: int) -> list[CrmTables]:
    """The export as it stood at t, as it is now, and with junk dated at or after t."""
    return [valid(before(full, t)), full, valid(with_future_noise(full, t, seed))]


def assert_same_features(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a = a.sort_values("opportunity_id", ignore_index=True)
    b = b.sort_values("opportunity_id", ignore_index=True)
    assert a["opportunity_id"].tolist() == b["opportunity_id"].tolist()
    pd.testing.assert_frame_equal(
        a[QUARTER_FEATURE_NAMES], b[QUARTER_FEATURE_NAMES], check_exact=False, rtol=1e-9, atol=1e-9
    )


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fraction=st.floats(0.3, 0.98), seed=st.integers(0, 10_000))
def test_rows_at_or_after_as_of_change_no_feature(full, fraction, seed):
    # given an as_of inside the history and one fitted state for every call
    t = time_inside(full, fraction, seed)
    state = fit_feature_state(full, t, ICP)
    # when the export is seen as it stood at t, as it is now, and with junk from the future
    views = three_views(full, t, seed)
    past, now, noisy = (build_features(view, t, state) for view in views)
    # then every feature of every deal open at t is the same
    assert len(past) > 10
    # (and some deals have a next step booked before t for after it: those rows stay visible)
    assert past["next_step_scheduled"].sum() > 0
    assert_same_features(past, now)
    assert_same_features(past, noisy)
    # and so is what the CRM itself said (the baselines the model is compared with)
    calls = [
        crm_baselines(view, t).sort_values("opportunity_id", ignore_index=True) for view in views
    ]
    for other in calls[1:]:
        pd.testing.assert_frame_equal(calls[0], other)


def test_training_snapshots_match_scoring_calls(full):
    # given snapshots of many deals at several dates, computed in one batch
    state = fit_feature_state(full, EXPORT, ICP)
    dates = pd.to_datetime(
        ["2025-06-01", "2025-09-15 13:00", "2026-01-10"], utc=True, format="ISO8601"
    )
    scored = [build_features(full, t, state) for t in dates]
    pairs = pd.concat([s[["opportunity_id", "as_of"]] for s in scored], ignore_index=True)
    batch = build_features(full, pairs, state)
    # then each row equals the scoring call at its date
    for t, single in zip(dates, scored, strict=True):
        assert_same_features(batch[batch["as_of"] == t], single)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fraction=st.floats(0.5, 0.98), seed=st.integers(0, 10_000))
def test_training_rows_are_chosen_and_labelled_by_nothing_after_the_cutoff(full, fraction, seed):
    # given a training cut-off t inside the history
    t = time_inside(full, fraction, seed)
    views = three_views(full, t, seed)
    # when the grid snapshots at t (window: the auto horizon) are drawn from each view
    horizons = [label_horizon(v.opportunities, t) for v in views]
    snaps = [
        grid_snapshots(v.opportunities, t, SnapshotSettings(), horizons[0]).sort_values(
            ["as_of", "opportunity_id"], ignore_index=True
        )
        for v in views
    ]
    # then where the history starts, the horizon, the rows, their labels and weights are the same
    assert len({history_start(v.opportunities, t) for v in views}) == 1
    assert horizons[0] == horizons[1] == horizons[2]
    assert len(snaps[0]) > 0
    for other in snaps[1:]:
        pd.testing.assert_frame_equal(snaps[0], other)
    # and so are the recent snapshots whose windows have not ended, and what they say so far
    recent = [
        recent_snapshots(v.opportunities, t, horizons[0]).sort_values(
            ["as_of", "opportunity_id"], ignore_index=True
        )
        for v in views
    ]
    assert recent[0]["won_so_far"].sum() > 0
    for other in recent[1:]:
        pd.testing.assert_frame_equal(recent[0], other)
    # and so are their features
    state = fit_feature_state(full, t, ICP)
    keys = snaps[0][["opportunity_id", "as_of"]]
    built = [build_features(v, keys, state) for v in views]
    for other in built[1:]:
        assert_same_features(built[0], other)
    # and so are the side models' labels wherever they are said to be known by t
    labelled = [with_side_labels(snaps[0], v.opportunities, t) for v in views]
    known = labelled[0]["in_quarter_known"]
    assert known.any()
    for other in labelled[1:]:
        assert other["in_quarter_known"].equals(known)
        pd.testing.assert_frame_equal(
            other.loc[known, SIDE_LABELS], labelled[0].loc[known, SIDE_LABELS]
        )
    # and so are the last horizon's snapshots whose quarter ended by t, and whether each deal
    # was won in that quarter (what the won-this-quarter model also learns from)
    quarter = [
        quarter_snapshots(v.opportunities, t, SnapshotSettings(), horizons[0]).sort_values(
            ["as_of", "opportunity_id"], ignore_index=True
        )
        for v in views
    ]
    as_of = micros(quarter[0]["as_of"])
    assert (quarter_end_micros(as_of) <= micros(pd.Series([t]))[0]).all()
    assert (quarter[0]["as_of"] > t - pd.Timedelta(days=horizons[0])).all()
    won = [won_in_quarter(quarter[0], v.opportunities) for v in views]
    for other, label in zip(quarter[1:], won[1:], strict=True):
        pd.testing.assert_frame_equal(quarter[0], other)
        assert (label == won[0]).all()
