"""The open deals of a quarter scored by both models (pipeline/periods.py)."""

import copy

import numpy as np
import pandas as pd
import pytest

from dealscore.errors import ModelMismatchError
from dealscore.pipeline.periods import open_deals

AS_OF = pd.Timestamp("2025-08-15", tz="UTC")


def test_a_won_this_quarter_model_needing_features_this_version_lacks_is_a_clear_error(
    year_after_training,
):
    # given the champion's won-this-quarter model, as if saved by a version that builds a
    # feature this one does not
    tables, loaded = year_after_training
    bundle = loaded.bundle
    assert bundle.in_quarter is not None
    newer = copy.copy(bundle.in_quarter)
    newer.feature_names_in_ = np.asarray(
        [*bundle.in_quarter.feature_names_in_, "crystal_ball_score"], dtype=object
    )

    # when the quarter's open deals are scored with it
    def scored(in_quarter):
        return open_deals(
            tables,
            bundle.estimator,
            bundle.feature_state,
            bundle.feature_names,
            "2025Q3",
            AS_OF,
            in_quarter=in_quarter,
        )

    # then it says which feature and what to do, rather than a KeyError
    with pytest.raises(
        ModelMismatchError, match=r"won-this-quarter model.*crystal_ball_score.*retrain"
    ):
        scored(newer)
    # and the model as saved scores them
    deals = scored(bundle.in_quarter)
    assert len(deals) and deals["p_win_in_period"].between(0, 1).all()
