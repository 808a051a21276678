"""Slices by snapshot date: the latest last, a horizon purged at each boundary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.model.split import PURGED, SliceShares, date_slices


def _rows(days: int = 400, deals_per_day: int = 5) -> tuple[pd.Series, pd.Series]:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    as_of = pd.Series(np.repeat(pd.date_range(start, periods=days, freq="D"), deals_per_day))
    ids = pd.Series([f"D{i % 300}" for i in range(len(as_of))])
    return as_of, ids


def test_no_label_window_reaches_into_a_later_slice():
    # given daily snapshots and a 30-day label window
    as_of, ids = _rows()
    # when
    names, bounds = date_slices(as_of, ids, 30, SliceShares())
    # then the slices come in time order and windows end before the next slice starts
    window_end = as_of + pd.Timedelta(days=30)
    fit = names.isin(["train", "validation"])
    assert (window_end[fit] <= bounds["calibration"]).all()
    assert (window_end[names == "calibration"] <= bounds["test"]).all()
    assert as_of[names == "test"].min() == bounds["test"]
    # and the purged rows are exactly those whose window straddles a boundary
    assert set(names) == {"train", "validation", "calibration", "test", PURGED}
    assert (as_of[names == PURGED] >= bounds["train_end"]).all()
    # and the held-out slices hold their shares of all rows
    assert (names == "test").mean() == pytest.approx(0.15, abs=0.02)
    assert (names == "calibration").mean() == pytest.approx(0.15, abs=0.02)
    # and validation is drawn by deal: no deal is on both sides
    assert not set(ids[names == "train"]) & set(ids[names == "validation"])


def test_a_history_shorter_than_the_purges_is_refused_with_the_reason():
    as_of, ids = _rows(days=60)
    with pytest.raises(ValueError, match=r"too short.*label horizon of 45 days"):
        date_slices(as_of, ids, 45, SliceShares())
