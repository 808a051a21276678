"""History rates over matured deals: a slow loss counts as soon as its window is over."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.features import build_features, fit_feature_state
from dealscore.schemas import CrmTables, Opportunities, validate_tables


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _owner_book() -> CrmTables:
    """One owner: a fast win, a loss closed late, a deal still open, and one to score."""
    frame = pd.DataFrame(
        {
            Opportunities.opportunity_id: ["FAST_WIN", "SLOW_LOSS", "STALE", "RECENT_WIN", "NOW"],
            Opportunities.created_at: [
                ts("2025-01-01"),
                ts("2025-01-01"),
                ts("2025-01-01"),
                ts("2025-05-01"),
                ts("2025-05-20"),
            ],
            Opportunities.status: ["won", "lost", "open", "won", "open"],
            Opportunities.closed_at: [
                ts("2025-01-20"),
                ts("2025-09-01"),
                pd.NaT,
                ts("2025-05-10"),
                pd.NaT,
            ],
            Opportunities.owner_id: ["REP1"] * 5,
        }
    )
    tables, report = validate_tables(CrmTables(opportunities=frame))
    assert report.ok, report.to_text()
    return tables


def test_owner_history_counts_deals_whose_window_is_over_won_or_not():
    # given a 100-day maturity and an as-of after three deals' windows ended
    tables = _owner_book()
    state = fit_feature_state(tables, ts("2025-06-01"), maturity_days=100)
    # when
    features = build_features(tables, ts("2025-06-01"), state).set_index("opportunity_id")
    # then the slow loss (closed after as_of) and the stale deal count as not won, and the
    # recent win (window not over) does not count yet: 1 win in 3, not 2 wins in 2 closed
    assert features.loc["NOW", "owner_past_deals"] == 3
    prior = features.loc["NOW", "owner_win_rate"]
    assert prior < 0.5
    # and the same export as it stood then (the slow loss still open) says the same
    then = tables.with_tables(
        opportunities=tables.opportunities.assign(
            status=np.where(
                tables.opportunities["closed_at"] >= ts("2025-06-01"),
                "open",
                tables.opportunities["status"],
            ),
            closed_at=tables.opportunities["closed_at"].where(
                tables.opportunities["closed_at"] < ts("2025-06-01")
            ),
        )
    )
    again = build_features(then, ts("2025-06-01"), state).set_index("opportunity_id")
    assert again.loc["NOW", "owner_past_deals"] == 3
    assert again.loc["NOW", "owner_win_rate"] == prior
