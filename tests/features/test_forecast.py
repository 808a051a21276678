"""The rep's call as of T, and whether it was made for a quarter already over."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.features import build_features


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_a_call_from_an_earlier_quarter_is_flagged_once_the_quarter_turns(tables):
    # given O3's latest call made on 2025-03-07 (in 2025Q1), and O2 with no call at all
    # when its features are built within Q1 and just after it ends
    during = build_features(tables, ts("2025-03-20")).set_index("opportunity_id")
    after = build_features(tables, ts("2025-04-01 00:00:01")).set_index("opportunity_id")
    # then the call is this quarter's in March and an earlier quarter's from April 1st
    assert during.loc["O3", "forecast_from_earlier_quarter"] == 0.0
    assert after.loc["O3", "forecast_from_earlier_quarter"] == 1.0
    assert during.loc["O3", "rep_category_rank"] == after.loc["O3", "rep_category_rank"] == 1.0
    # and a deal the rep never called has no value, not "this quarter"
    assert np.isnan(during.loc["O2", "forecast_from_earlier_quarter"])
