"""Training snapshots: inside each resolved deal's life, labelled, censored at the cut-off."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.features import SnapshotSettings, build_features, sample_snapshots
from dealscore.features.snapshots import grid_snapshots, label_horizon
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


@pytest.mark.parametrize(
    "settings",
    [
        SnapshotSettings(scheme="per_deal", per_deal=3),
        SnapshotSettings(scheme="periodic", every_days=10),
    ],
)
def test_snapshots_fall_inside_resolved_lives_and_carry_the_outcome(tables, settings):
    # when
    snaps = sample_snapshots(tables.opportunities, CUTOFF, settings)
    # then
    deals = tables.opportunities.set_index("opportunity_id").loc[snaps["opportunity_id"]]
    assert (deals["created_at"].to_numpy() < snaps["as_of"].to_numpy()).all()
    assert (snaps["as_of"].to_numpy() <= deals["closed_at"].to_numpy()).all()
    assert (deals["closed_at"] < CUTOFF).all()  # open or later-closing deals are not labelled
    assert (snaps["label"] == (deals["status"].to_numpy() == "won")).all()
    assert snaps.groupby("opportunity_id")["weight"].sum().round(9).eq(1).all()
    # every snapshot is a row build_features can compute
    features = build_features(tables, snaps[["opportunity_id", "as_of"]])
    assert len(features) == len(snaps)


def test_per_deal_scheme_gives_every_deal_the_same_rows_spread_over_its_life(tables):
    snaps = sample_snapshots(
        tables.opportunities, CUTOFF, SnapshotSettings(scheme="per_deal", per_deal=4, seed=1)
    )
    assert snaps.groupby("opportunity_id").size().eq(4).all()
    # stratified: the k-th snapshot lies in the k-th quarter of the deal's life
    rank = snaps.groupby("opportunity_id").cumcount()
    assert ((snaps["life_fraction"] > rank / 4) & (snaps["life_fraction"] <= (rank + 1) / 4)).all()
    again = sample_snapshots(
        tables.opportunities, CUTOFF, SnapshotSettings(scheme="per_deal", per_deal=4, seed=1)
    )
    pd.testing.assert_frame_equal(snaps, again)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        SnapshotSettings(scheme="daily")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SnapshotSettings(per_deal=0)


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
    assert label_horizon(deals, CUTOFF) == max(
        30.0, min(365.0, float(np.ceil(cycles.quantile(0.9))))
    )
    assert label_horizon(deals.iloc[:0], CUTOFF) == 365.0
