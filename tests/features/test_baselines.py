"""The CRM's own view as of T (rep forecast, stage probability), point-in-time like the features."""

from __future__ import annotations

import pandas as pd

from dealscore.features.baselines import CATEGORY_PROBABILITY, COLUMNS, crm_baselines
from dealscore.schemas import validate_tables
from dealscore.synthetic import GeneratorSettings, generate_crm

EXPORT = pd.Timestamp("2026-03-01", tz="UTC")


def test_latest_rep_forecast_and_stage_probability_strictly_before_as_of(tables):
    # given O1 forecast "commit" at 0.8 on 2025-02-07 and O3 "pipeline" without a probability
    at = pd.Timestamp("2025-03-20", tz="UTC")
    validated, _ = validate_tables(tables)
    # when
    base = crm_baselines(validated, at).set_index("opportunity_id")
    # then: O1 closed on 2025-03-01; O2 is open without any forecast; O3's category sets it
    assert list(base.index) == ["O2", "O3"]
    assert pd.isna(base.loc["O2", "rep_probability"]) and pd.isna(base.loc["O2", "rep_category"])
    assert base.loc["O3", "rep_category"] == "pipeline"
    assert base.loc["O3", "rep_probability"] == CATEGORY_PROBABILITY["pipeline"]
    # a forecast dated exactly at as_of is not yet known
    exactly = crm_baselines(validated, pd.Timestamp("2025-03-07", tz="UTC"))
    assert exactly["rep_category"].isna().all()


def test_rows_after_as_of_do_not_move_the_baselines():
    tables, _ = validate_tables(
        generate_crm(GeneratorSettings(deals=600, seed=4, export_date=EXPORT)).tables
    )
    at = pd.Timestamp("2025-11-15 12:00", tz="UTC")
    before = crm_baselines(tables, at)
    later = tables.forecasts.assign(submitted_at=at, forecast_category="commit", probability=1.0)
    history = tables.stage_history.assign(changed_at=at, probability=0.99)
    noisy, report = validate_tables(
        tables.with_tables(
            forecasts=pd.concat(
                [tables.forecasts, later[later["opportunity_id"].isin(before["opportunity_id"])]]
            ),
            stage_history=pd.concat(
                [
                    tables.stage_history,
                    history[history["opportunity_id"].isin(before["opportunity_id"])],
                ]
            ),
        )
    )
    assert report.ok, report.to_text()
    after = crm_baselines(noisy, at)
    assert (
        before["rep_probability"].notna().mean() > 0.9 and before["stage_probability"].notna().all()
    )
    pd.testing.assert_frame_equal(before[COLUMNS], after[COLUMNS])
