import numpy as np
import pandas as pd
import pytest

from dealscore.pipeline.training import TrainSettings
from dealscore.pipeline.training.rows import training_rows, with_side_labels

UTC = "UTC"


def _deals(closed: list[str | None], status: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "opportunity_id": [f"o{i}" for i in range(len(status))],
            "closed_at": pd.to_datetime(closed, utc=True),
            "status": status,
        }
    )


def _snapshots(as_of: str, n: int, label: list[int], outcome: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "opportunity_id": [f"o{i}" for i in range(n)],
            "as_of": pd.Timestamp(as_of, tz=UTC),
            "label": label,
            "outcome": outcome,
        }
    )


def test_a_win_late_in_the_quarter_counts_for_it_however_short_the_label_window():
    # given deals open at a quarter's start, labelled with a 30-day window: one won on day 80
    # of the quarter (beyond the window, inside the quarter), one won in the next quarter,
    # one lost
    deals = _deals(["2025-06-20", "2025-07-10", "2025-05-01"], ["won", "won", "lost"])
    rows = _snapshots("2025-04-01", 3, label=[0, 0, 0], outcome=["open", "open", "lost"])
    before = rows.copy()
    # when the side labels are added with a cut-off after the quarter's end
    labelled = with_side_labels(rows, deals, pd.Timestamp("2025-08-01", tz=UTC))
    # then only the win inside the quarter is won this quarter, and every row is known
    assert labelled["label_in_quarter"].tolist() == [1, 0, 0]
    assert labelled["in_quarter_known"].all()
    # and the input frame is untouched
    pd.testing.assert_frame_equal(rows, before)


def test_a_quarter_not_over_by_the_cut_off_is_not_known():
    # given a snapshot in a quarter that ends after the training cut-off
    deals = _deals([None], ["open"])
    rows = _snapshots("2025-04-01", 1, label=[0], outcome=["open"])
    # when labelled at a cut-off inside that quarter
    labelled = with_side_labels(rows, deals, pd.Timestamp("2025-06-01", tz=UTC))
    # then it is marked unknown (the won-this-quarter model leaves it out)
    assert not labelled["in_quarter_known"].any()
    assert np.isnan(labelled["days_to_win"].iloc[0])


def test_a_cut_off_before_the_exports_last_fact_is_refused(tables):
    # given an export whose last dated fact is a close on 2025-04-01
    # when training is told the export stands at an earlier time
    # then it refuses: rows dated after the cut-off would be read as known
    with pytest.raises(ValueError, match="before the export's last dated fact"):
        training_rows(tables, TrainSettings(), cutoff=pd.Timestamp("2025-03-15", tz=UTC))
