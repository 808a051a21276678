"""The open deals of a quarter scored by both models (pipeline/periods.py)."""

import copy

import numpy as np
import pandas as pd
import pytest

from dealscore.errors import ModelMismatchError
from dealscore.pipeline.periods import open_deals

AS_OF = pd.Timestamp("2025-08-15", tz="UTC")
NEWER = "crystal_ball_score"


def _scored(tables, bundle, feature_names, in_quarter):
    return open_deals(
        tables,
        bundle.estimator,
        bundle.feature_state,
        feature_names,
        "2025Q3",
        AS_OF,
        in_quarter=in_quarter,
    )


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
        [*bundle.in_quarter.feature_names_in_, NEWER], dtype=object
    )

    # when the quarter's open deals are scored with it
    # then it says which feature and what to do, rather than a KeyError
    with pytest.raises(ModelMismatchError, match=rf"won-this-quarter model.*{NEWER}.*retrain"):
        _scored(tables, bundle, bundle.feature_names, newer)
    # and the model as saved scores them
    deals = _scored(tables, bundle, bundle.feature_names, bundle.in_quarter)
    assert len(deals) and deals["p_win_in_period"].between(0, 1).all()


def test_a_win_model_needing_features_this_version_lacks_is_a_clear_error(year_after_training):
    # given the champion's win model, as if saved by a version that builds a feature this one
    # does not
    tables, loaded = year_after_training
    bundle = loaded.bundle

    # when the quarter's open deals are scored with it (compare, the report, the backtest)
    # then it names the feature and says to retrain, rather than a KeyError
    with pytest.raises(ModelMismatchError, match=rf"the win model.*{NEWER}.*retrain"):
        _scored(tables, bundle, [*bundle.feature_names, NEWER], bundle.in_quarter)
