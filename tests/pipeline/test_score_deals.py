"""Scoring a chunk at a time gives what scoring every row at once gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from dealscore.model.outcomes import no_decision


def test_no_decision_in_chunks_equals_all_rows_at_once():
    # given a fitted classifier and rows that do not divide into whole chunks
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(103, 4)), columns=list("abcd"))
    model = LogisticRegression().fit(X, (X["a"] + rng.normal(size=103) > 0).astype(int))
    # when P(no decision) is computed ten rows at a time
    chunked = no_decision(model, X, chunk=10)
    # then it is the all-at-once answer, row for row, and nothing for no rows
    np.testing.assert_allclose(chunked, model.predict_proba(X)[:, 1])
    assert no_decision(model, X.iloc[:0], chunk=10).shape == (0,)
