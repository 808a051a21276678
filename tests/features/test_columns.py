"""The export cut to what scoring reads: fewer columns, labels as categoricals, same features."""

from __future__ import annotations

import pandas as pd
import pytest

from dealscore.features import build_features
from dealscore.features.columns import LABELS, READ, scoring_columns, with_labels
from dealscore.schemas import validate_tables
from dealscore.synthetic import GeneratorSettings, generate_crm

EXPORT = pd.Timestamp("2026-03-01", tz="UTC")


@pytest.fixture(scope="module")
def tables():
    generated = generate_crm(GeneratorSettings(deals=800, seed=11, export_date=EXPORT))
    return validate_tables(generated.tables)[0]


def test_large_tables_keep_only_the_columns_scoring_reads(tables):
    # given a validated export whose activities carry their own ids and accounts
    assert {"activity_id", "account_id"} <= set(tables.activities.columns)
    before = {name: frame.copy() for name, frame in tables.present()}
    # when it is cut down for scoring, then its labels and ids made categoricals
    cut = scoring_columns(tables)
    labelled = with_labels(cut)
    # then the large tables hold only what the features read, labels and ids as categoricals
    for name, columns in READ.items():
        assert set(cut.get(name).columns) == set(columns) & set(before[name].columns)
        frame = labelled.get(name)
        assert list(frame.columns) == list(cut.get(name).columns)
        for column in frame.columns:
            categorical = isinstance(frame[column].dtype, pd.CategoricalDtype)
            assert categorical == (column in LABELS[name]), (name, column)
            assert not isinstance(cut.get(name)[column].dtype, pd.CategoricalDtype)
    assert "activity_id" not in cut.activities
    assert isinstance(labelled.activities["opportunity_id"].dtype, pd.CategoricalDtype)
    # and the other tables, and the frames given, are as they were
    assert cut.opportunities is tables.opportunities and cut.accounts is tables.accounts
    for name, frame in tables.present():
        pd.testing.assert_frame_equal(frame, before[name])


def test_the_features_of_the_cut_export_are_the_same(tables):
    # given an export and the same export cut down for scoring
    cut = with_labels(scoring_columns(tables))
    # when features are built from each, now and at earlier pairs
    pairs = tables.opportunities[["opportunity_id", "created_at"]].rename(
        columns={"created_at": "as_of"}
    )
    pairs["as_of"] = pairs["as_of"] + pd.Timedelta(days=20)
    # then they are identical
    for as_of in (EXPORT, pairs):
        pd.testing.assert_frame_equal(build_features(cut, as_of), build_features(tables, as_of))
