"""Purged time folds: every row held out once, by date; no label window shared across a fold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.model.split import deal_folds, deal_sample, time_folds


def _as_of(days: int = 400, per_day: int = 5) -> pd.Series:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    return pd.Series(np.repeat(pd.date_range(start, periods=days, freq="D"), per_day))


def test_every_row_is_held_out_once_in_blocks_of_consecutive_dates():
    # given daily snapshots, shuffled
    as_of = _as_of().sample(frac=1, random_state=3).reset_index(drop=True)
    # when
    folds = time_folds(as_of, 30, k=5)
    # then five blocks of about equal rows, each a run of dates after the one before
    assert folds.k == 5
    sizes = np.bincount(folds.block)
    assert sizes.sum() == len(as_of) and sizes.min() > 0.18 * len(as_of)
    spans = [(as_of[folds.block == b].min(), as_of[folds.block == b].max()) for b in range(5)]
    assert all(spans[b][1] < spans[b + 1][0] for b in range(4))
    assert [s for s, _ in spans] == list(folds.starts)
    np.testing.assert_array_equal(np.sort(folds.newest()), np.flatnonzero(folds.block == 4))


def test_no_label_window_overlaps_the_block_it_predicts():
    # given daily snapshots and a 30-day label window
    as_of = _as_of()
    horizon = pd.Timedelta(days=30)
    folds = time_folds(as_of, 30, k=5)
    for b, (train, held) in enumerate(folds.splits()):
        first, last = as_of[held].min(), as_of[held].max()
        trained = as_of[train]
        # then each training row's window ends before the block starts or starts a window after
        # the block's last date...
        assert ((trained + horizon <= first) | (trained >= last + horizon)).all()
        # ...and every other row outside the block is purged only because its window overlaps
        others = np.setdiff1d(np.flatnonzero(folds.block != b), train)
        purged = as_of[others]
        assert ((purged + horizon > first) & (purged < last + horizon)).all()
        assert len(train) > 0


def test_a_subset_keeps_its_rows_blocks_and_windows():
    # given folds and a mask (the deals not won, say)
    as_of = _as_of(days=200)
    folds = time_folds(as_of, 20, k=4)
    mask = np.arange(len(as_of)) % 3 != 0
    # when
    sub = folds.subset(mask)
    # then each subset row keeps its block, and trains on the same rows that survive the mask
    np.testing.assert_array_equal(sub.block, folds.block[mask])
    kept = np.flatnonzero(mask)
    for b in range(folds.k):
        np.testing.assert_array_equal(kept[sub.train[b]], folds.train[b][mask[folds.train[b]]])


def test_a_few_dates_give_fewer_blocks_and_no_rows_none():
    assert time_folds(_as_of(days=3), 10, k=5).k == 3
    with pytest.raises(ValueError, match="no labelled snapshots"):
        time_folds(pd.Series([], dtype="datetime64[us, UTC]"), 10)


def test_a_deal_sample_cross_fits_whole_deals_within_the_cap_and_nothing_else():
    # given 400 days of snapshots of deals with 1 to 9 rows each
    as_of = _as_of()
    rng = np.random.default_rng(0)
    deals = np.repeat(np.arange(700), rng.integers(1, 10, 700))[: len(as_of)]
    deals = np.r_[deals, np.full(len(as_of) - len(deals), 700)]
    folds = time_folds(as_of, 30, k=5)
    # when at most 600 rows are cross-fitted
    keep = deal_sample(deals, 600, seed=1)
    sampled = folds.sample(keep)
    # then whole deals, at most 600 rows, and about that many
    assert 500 < keep.sum() <= 600
    kept = set(deals[keep])
    assert not kept & set(deals[~keep])
    # and the rows left out are neither held out nor learned from, the rest as before
    assert (sampled.block[~keep] == -1).all()
    np.testing.assert_array_equal(sampled.block[keep], folds.block[keep])
    for (train, held), (all_train, _) in zip(sampled.splits(), folds.splits(), strict=True):
        assert keep[train].all() and keep[held].all()
        np.testing.assert_array_equal(train, all_train[keep[all_train]])
    assert (sampled.recency()[~keep] == 0).all()
    # and under the cap, every row
    assert deal_sample(deals, len(deals), seed=1).all()


def test_blocks_of_deals_hold_each_deal_out_once_whatever_its_dates():
    # given 200 deals' weekly snapshots within one quarter
    dates = pd.date_range("2025-10-03", periods=12, freq="7D", tz="UTC")
    as_of = pd.Series(np.tile(dates, 200))
    deals = pd.Series(np.repeat([f"OPP{i:03d}" for i in range(200)], 12))
    # when cut into blocks of deals
    folds = deal_folds(deals, as_of, 30.0, k=5, seed=1)
    # then a deal's rows share one block, each block learns from every other row
    assert folds.k == 5 and folds.by_deal
    assert (deals.groupby(folds.block).nunique() >= 30).all()
    assert (pd.Series(folds.block).groupby(deals).nunique() == 1).all()
    for b in range(5):
        np.testing.assert_array_equal(folds.train[b], np.flatnonzero(folds.block != b))
    # and every block spans the quarter's dates: none holds out a stretch of it
    assert all(as_of[folds.block == b].nunique() == 12 for b in range(5))
    # and no block is newer: equal weights, no newest block, kept by a subset
    assert (folds.recency() == 1.0).all() and len(folds.newest()) == 0
    assert folds.subset(np.arange(len(deals)) % 2 == 0).by_deal
