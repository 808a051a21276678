"""How late won deals close: the slips history gives (features/horizon.py)."""

from dataclasses import replace

import pandas as pd

from dealscore.features.horizon import won_slips
from dealscore.features.pit import micros
from dealscore.schemas.tables import CrmTables, StageHistory
from tests.conftest import ts


def _with_close_dates(tables: CrmTables) -> CrmTables:
    history = tables.stage_history.assign(
        **{StageHistory.close_date: [ts("2025-02-15"), ts("2025-03-01"), ts("2025-03-15")]}
    )
    return replace(tables, stage_history=history)


def test_won_slips_before_any_stage_change_are_empty(tables):
    # given stage history with expected closes, all of it dated 2025-01-01 or later
    dated = _with_close_dates(tables)
    # when the slips are asked for as of a day before the first change
    slips = won_slips(dated, int(micros(pd.Series([ts("2024-12-01")]))[0]))
    # then there are none, rather than a type error on the empty selection
    assert slips.empty
    assert list(slips.columns) == ["slip", "observed", "lead", "weight"]


def test_won_slips_keep_the_won_and_the_open_deals_rows(tables):
    # given O1 won on 2025-03-01 (expected 2025-02-15 when created), O2 lost, O3 open
    dated = _with_close_dates(tables)
    # when the slips are taken before 2025-05-01
    slips = won_slips(dated, int(micros(pd.Series([ts("2025-05-01")]))[0]))
    # then O1's first row slipped 14 days, observed; its closing row says nothing; O2 is gone
    assert slips["observed"].tolist() == [True]
    assert slips["slip"].tolist() == [14.0]
