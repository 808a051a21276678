"""Training snapshots: inside each resolved deal's life, labelled, censored at the cut-off."""

from __future__ import annotations

import pandas as pd
import pytest

from dealscore.features import SnapshotSettings, build_features, sample_snapshots
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
    "settings", [SnapshotSettings(per_deal=3), SnapshotSettings(scheme="periodic", every_days=10)]
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
    snaps = sample_snapshots(tables.opportunities, CUTOFF, SnapshotSettings(per_deal=4, seed=1))
    assert snaps.groupby("opportunity_id").size().eq(4).all()
    # stratified: the k-th snapshot lies in the k-th quarter of the deal's life
    rank = snaps.groupby("opportunity_id").cumcount()
    assert ((snaps["life_fraction"] > rank / 4) & (snaps["life_fraction"] <= (rank + 1) / 4)).all()
    again = sample_snapshots(tables.opportunities, CUTOFF, SnapshotSettings(per_deal=4, seed=1))
    pd.testing.assert_frame_equal(snaps, again)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        SnapshotSettings(scheme="daily")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SnapshotSettings(per_deal=0)
