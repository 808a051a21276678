"""Training snapshots: every deal open on a grid of dates, labelled within a window that ended
by the cut-off, from where the export's history starts; and the recent ones whose windows have
not ended."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.features import SnapshotSettings, build_features
from dealscore.features.snapshots import (
    auto_horizon,
    grid_snapshots,
    history_start,
    label_horizon,
    recent_snapshots,
)
from dealscore.schemas import validate_tables
from dealscore.synthetic import GeneratorSettings, generate_crm

CUTOFF = pd.Timestamp("2025-12-01", tz="UTC")


@pytest.fixture(scope="module")
def tables():
    tables, _ = validate_tables(
        generate_crm(
            GeneratorSettings(deals=600, seed=3, export_date=pd.Timestamp("2026-03-01", tz="UTC"))
        ).tables
    )
    return tables


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        SnapshotSettings(every_days=0)
    with pytest.raises(ValueError):
        SnapshotSettings(horizon_days=-1)


def test_grid_rows_are_every_deal_open_at_each_date_labelled_within_the_window(tables):
    # given a 60-day label window and a weekly grid
    settings = SnapshotSettings(every_days=7, horizon_days=60)
    # when
    snaps = grid_snapshots(tables.opportunities, CUTOFF, settings, 60)
    # then every window ended before the cut-off
    window_end = snaps["as_of"] + pd.Timedelta(days=60)
    assert (window_end <= CUTOFF).all()
    assert snaps["as_of"].nunique() > 20
    # and each row is a deal open at its date
    deals = tables.opportunities.set_index("opportunity_id").loc[snaps["opportunity_id"]]
    created, closed = deals["created_at"].to_numpy(), deals["closed_at"]
    assert (created < snaps["as_of"].to_numpy()).all()
    assert (closed.isna() | (closed >= snaps["as_of"].to_numpy())).to_numpy().all()
    # and the label is "won inside the window", never a later win or a still-open deal
    won_in_window = (deals["status"] == "won").to_numpy() & (closed < window_end.to_numpy())
    assert (snaps["label"].to_numpy() == won_in_window.to_numpy()).all()
    won_later = (deals["status"] == "won").to_numpy() & ~won_in_window.to_numpy()
    assert won_later.any() and (snaps.loc[won_later, "outcome"] == "open").all()
    # and every deal open at a grid date is there: the same as scoring that date
    date = snaps["as_of"].iloc[len(snaps) // 2]
    scored = build_features(tables, date)
    assert set(scored["opportunity_id"]) == set(snaps.loc[snaps["as_of"] == date, "opportunity_id"])
    # and only old deals are down-weighted, by their age (their past), not their length
    age = (snaps["as_of"] - deals["created_at"].reset_index(drop=True)).dt.total_seconds() / 86_400
    expected = (90 / age).clip(upper=1.0)
    pd.testing.assert_series_equal(snaps["weight"], expected, check_names=False)


def test_auto_horizon_is_the_90th_percentile_of_won_cycles_within_bounds(tables):
    deals = tables.opportunities
    won = deals[(deals["status"] == "won") & (deals["closed_at"] < CUTOFF)]
    cycles = (won["closed_at"] - won["created_at"]).dt.total_seconds() / 86_400
    span = (CUTOFF - history_start(deals, CUTOFF)).total_seconds() / 86_400
    assert span > 5 * cycles.quantile(0.9)  # a long history: the percentile itself
    assert label_horizon(deals, CUTOFF) == max(
        30.0, min(365.0, float(np.ceil(cycles.quantile(0.9))))
    )
    assert label_horizon(deals.iloc[:0], CUTOFF) == 365.0


def test_a_short_history_gets_a_horizon_it_can_label_and_says_why(tables):
    # given the same deals seen 200 days after the first date both outcomes were recorded
    deals = tables.opportunities
    start = history_start(deals, CUTOFF)
    cutoff = start + pd.Timedelta(days=200)
    early = deals[deals["created_at"] < cutoff]
    # when the horizon is chosen
    horizon, why = auto_horizon(early, cutoff)
    # then it is a fifth of those 200 days, not the cycles' 90th percentile, and it says so
    assert horizon == 40.0
    assert "200 days of history can label a window of about 40" in why
    # and a long history needs no such note
    assert auto_horizon(deals, CUTOFF)[1] == ""


def test_history_starts_when_both_outcomes_are_on_record(tables):
    # given a funnel whose first win comes long after its first losses
    deals = tables.opportunities
    won = deals["status"] == "won"
    first_loss = deals.loc[~won & deals["closed_at"].notna(), "closed_at"].min()
    late_win = first_loss + pd.Timedelta(days=150)
    funnel = deals[~won | (deals["closed_at"] >= late_win)]
    # when its grid is drawn
    start = history_start(funnel, CUTOFF)
    snaps = grid_snapshots(funnel, CUTOFF, SnapshotSettings(), 60)
    # then the history starts at the first win, and no row is dated before it
    assert start == funnel.loc[funnel["status"] == "won", "closed_at"].min() >= late_win
    assert snaps["as_of"].min() > start
    # while with every outcome on record it starts once the first of each has closed
    both = deals.loc[deals["closed_at"].notna()].groupby(won)["closed_at"].min().max()
    assert history_start(deals, CUTOFF) == both


def test_recent_snapshots_say_what_is_known_at_the_cutoff(tables):
    # when the last 60 days' snapshots are drawn
    recent = recent_snapshots(tables.opportunities, CUTOFF, 60)
    # then they are deals open at dates within the last 60 days, with their elapsed time
    assert recent["as_of"].nunique() == 6
    assert (recent["as_of"] >= CUTOFF - pd.Timedelta(days=60)).all()
    assert (recent["as_of"] < CUTOFF).all()
    elapsed = (CUTOFF - recent["as_of"]).dt.total_seconds() / 86_400
    np.testing.assert_allclose(recent["elapsed_days"], elapsed)
    # and "won so far" counts only wins before the cut-off, never a later one
    deals = tables.opportunities.set_index("opportunity_id").loc[recent["opportunity_id"]]
    won_before = (deals["status"] == "won") & (deals["closed_at"] < CUTOFF)
    assert (recent["won_so_far"].to_numpy() == won_before.to_numpy()).all()
    won_after = (deals["status"] == "won") & (deals["closed_at"] >= CUTOFF)
    assert won_after.any()
