"""The evaluate job: the forward test on its own, its scored deals written where asked."""

from __future__ import annotations

import pandas as pd

from dealscore.jobs.evaluate import run_evaluate
from dealscore.pipeline.training import TrainSettings

RECIPE = TrainSettings(
    icp="",
    track=False,
    in_quarter_model=False,
    ladder=("base_rate", "logistic_regression"),  # the writing is under test, not the ladder
)


def test_evaluate_writes_every_scored_deal_where_asked(crm, tmp_path):
    # given a past date whose outcomes the export holds, and a Parquet file to write to
    out = tmp_path / "forward.parquet"
    date = pd.Timestamp("2025-06-01", tz="UTC")
    # when the recipe is replayed there
    result = run_evaluate(crm, RECIPE, [date], out=out)
    # then the forward test is returned, and every deal it scored is in the file, as Parquet
    assert result.out == out and len(result.forward.rows)
    written = pd.read_parquet(out)
    assert len(written) == len(result.forward.rows)
    assert {"opportunity_id", "label", "model", "horizon_days"} <= set(written.columns)
    assert (written["as_of"] == date).all()
