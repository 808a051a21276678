import numpy as np
import pandas as pd
import pytest

from dealscore.features import FEATURE_NAMES, QUARTER_FEATURE_NAMES
from dealscore.model.scorers import LinearScorer
from dealscore.pipeline.training import TrainSettings
from dealscore.pipeline.training.evaluate import fit_and_evaluate
from dealscore.pipeline.training.rows import quarter_rows, training_rows, with_side_labels
from dealscore.schemas import validate_tables
from dealscore.synthetic import GeneratorSettings, generate_crm

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


@pytest.fixture(scope="module")
def short_history():
    """A year of generated deals whose export ends three weeks into a quarter."""
    crm = generate_crm(
        GeneratorSettings(
            deals=1500, seed=3, years=1.0, export_date=pd.Timestamp("2025-07-22", tz=UTC)
        )
    )
    return validate_tables(crm.tables)[0]


def test_the_last_horizon_before_a_quarter_ended_trains_the_won_this_quarter_model(short_history):
    # given an export three weeks into a quarter, and a label window longer than three weeks
    prepared = training_rows(short_history, TrainSettings())
    horizon = pd.Timedelta(days=prepared.horizon)
    assert horizon > pd.Timedelta(days=21)
    # when its training rows are drawn, then the last horizon's snapshots of the quarter that
    # ended are set aside for the won-this-quarter model, dated after every labelled row
    quarter, rows = quarter_rows(short_history, prepared, TrainSettings()), prepared.rows
    assert len(quarter) > 0
    assert quarter["as_of"].min() > rows["as_of"].max()
    assert (quarter["as_of"] > prepared.cutoff - horizon).all()
    assert (quarter["as_of"] < pd.Timestamp("2025-07-01", tz=UTC)).all()
    # and each is labelled by whether its deal was won before that quarter ended
    deals = short_history.opportunities.set_index("opportunity_id")
    closed = deals.loc[quarter["opportunity_id"], "closed_at"].to_numpy()
    won = deals.loc[quarter["opportunity_id"], "status"].eq("won").to_numpy()
    expected = won & (closed < pd.Timestamp("2025-07-01", tz=UTC))
    assert quarter["label_in_quarter"].tolist() == expected.astype(int).tolist()
    assert 0 < quarter["label_in_quarter"].mean() < 1
    # and they carry the same features as the labelled rows
    assert set(FEATURE_NAMES) <= set(quarter.columns)
    # and none is drawn when the won-this-quarter model is off
    off = TrainSettings(in_quarter_model=False)
    assert quarter_rows(short_history, training_rows(short_history, off), off).empty


def test_a_label_window_inside_the_cut_offs_own_quarter_sets_none_aside(short_history):
    # given an export three weeks into a quarter, and a label window of two weeks
    # when its training rows are drawn
    prepared = training_rows(short_history, TrainSettings(horizon_days=14))
    # then no snapshot is set aside: the window's quarter has not ended
    assert quarter_rows(short_history, prepared, TrainSettings(horizon_days=14)).empty
    assert len(prepared.rows) > 0


def test_the_won_this_quarter_model_learns_from_the_rows_set_aside(short_history):
    # given an export three weeks into a quarter
    settings = TrainSettings(
        icp="", track=False, forward_dates=0, ladder=("base_rate", "logistic_regression")
    )
    prepared = training_rows(short_history, settings)
    known = int(prepared.rows["in_quarter_known"].sum())
    # when the models are fitted
    result = fit_and_evaluate(short_history, settings)
    # then the won-this-quarter model was cross-fitted on the labelled rows whose quarter is
    # over and on the last horizon's rows set aside for it
    assert result.in_quarter is not None
    assert len(result.in_quarter.oof_) == known + len(
        quarter_rows(short_history, prepared, settings)
    )


def test_the_won_this_quarter_model_chooses_its_own_penalty(short_history):
    # given a recipe whose win model is a penalised logistic regression
    settings = TrainSettings(
        icp="", track=False, forward_dates=0, ladder=("base_rate", "logistic_regression")
    )
    # when the models are fitted
    result = fit_and_evaluate(short_history, settings)
    # then the won-this-quarter model searched every penalty on its own folds rather than
    # taking the one chosen for winning ever
    scorer = result.in_quarter.scorer_
    assert result.in_quarter.penalty is None
    assert scorer.penalties == LinearScorer.PENALTIES
    assert scorer.C_ in LinearScorer.PENALTIES


@pytest.fixture(scope="module")
def fitted(short_history):
    """The recipe with its won-this-quarter model, fitted on the short history."""
    settings = TrainSettings(
        icp="", track=False, forward_dates=0, ladder=("base_rate", "logistic_regression")
    )
    return fit_and_evaluate(short_history, settings)


def test_only_the_won_this_quarter_model_keeps_its_win_rate_after_the_refit(fitted):
    # given the recipe with its won-this-quarter model, fitted
    result = fitted
    # then the won-this-quarter model, whose probabilities are summed into the quarter's
    # number, was moved to the win rate its calibration was fitted to
    assert result.in_quarter is not None and result.in_quarter.refit_correction
    assert result.in_quarter.refit_shift_ != 0.0
    # and its calibration reads the days left (no other model's does)
    assert result.in_quarter.timed_ is not None and result.model.timed_ is None
    # and the win model, whose level the recent correction sets, was not
    assert not result.model.refit_correction and result.model.refit_shift_ == 0.0


def test_only_the_won_this_quarter_model_reads_the_room_to_the_quarter_end(fitted):
    # given the recipe with its won-this-quarter model, fitted
    result = fitted
    # then the won-this-quarter model learned from every feature and the room to the quarter end
    assert result.in_quarter is not None
    assert list(result.in_quarter.feature_names_in_) == QUARTER_FEATURE_NAMES
    # and the win model, and the reasons read from it, from the catalogue alone
    assert list(result.model.feature_names_in_) == FEATURE_NAMES
    assert "close_room_days" not in FEATURE_NAMES
