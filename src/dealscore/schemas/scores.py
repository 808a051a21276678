"""What the scorer writes: one row per (opportunity_id, as_of, model version), and the rejects.

Flat columns, so a SQL table, a Parquet file and a CSV hold the same thing. Factors are the top
three raising and the top three lowering the score: feature, contribution (log-odds) and reason.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, TypeAlias

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID
from dealscore.schemas.tables import UtcTimestamp, values

KEY = [OPPORTUNITY_ID, AS_OF, "model_name", "model_version"]
FACTORS = 3


class Band(StrEnum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"


class Trend(StrEnum):
    IMPROVING = "improving"
    STEADY = "steady"
    DECLINING = "declining"
    NEW = "new"  # no earlier score
    MODEL_CHANGED = "model_changed"  # the earlier score came from another model version


def factor_columns(direction: str, rank: int) -> tuple[str, str, str]:
    """(feature, contribution, reason) column names of one factor, e.g. up_1_feature."""
    prefix = f"{direction}_{rank}"
    return f"{prefix}_feature", f"{prefix}_contribution", f"{prefix}_reason"


FACTOR_COLUMNS = [
    column
    for direction in ("up", "down")
    for rank in range(1, FACTORS + 1)
    for column in factor_columns(direction, rank)
]


class Scores(pa.DataFrameModel):
    opportunity_id: Series[str]
    as_of: Series[UtcTimestamp]
    scored_at: Series[UtcTimestamp]
    model_name: Series[str]
    model_version: Series[str]
    run_id: Series[str]
    win_probability: Series[float] = pa.Field(ge=0, le=1)
    # How the rest ends: lost to a competitor, or no decision (model/outcomes.py). The three sum
    # to 1; empty for a model trained without the no-decision model.
    lost_probability: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    no_decision_probability: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    # What win_probability promises: won within this many days of as_of (the model's label
    # window); what `monitor` checks it against. Empty in rows written before it was kept.
    horizon_days: Series[float] = pa.Field(gt=0, nullable=True)
    band: Series[str] = pa.Field(isin=values(Band))
    expected_amount: Series[float] = pa.Field(ge=0, nullable=True)
    previous_probability: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    previous_as_of: Series[UtcTimestamp] = pa.Field(nullable=True)
    trend: Series[str] = pa.Field(isin=values(Trend))
    # Why an improving or declining score moved since previous_as_of: the factors whose credit
    # moved most, in the reasons' words ("up: 4 activities in the last 90 days; ..."); empty
    # for a steady, new or model_changed trend.
    change_reason: Series[str] = pa.Field(nullable=True)
    up_1_feature: Series[str] = pa.Field(nullable=True)
    up_1_contribution: Series[float] = pa.Field(nullable=True)
    up_1_reason: Series[str] = pa.Field(nullable=True)
    up_2_feature: Series[str] = pa.Field(nullable=True)
    up_2_contribution: Series[float] = pa.Field(nullable=True)
    up_2_reason: Series[str] = pa.Field(nullable=True)
    up_3_feature: Series[str] = pa.Field(nullable=True)
    up_3_contribution: Series[float] = pa.Field(nullable=True)
    up_3_reason: Series[str] = pa.Field(nullable=True)
    down_1_feature: Series[str] = pa.Field(nullable=True)
    down_1_contribution: Series[float] = pa.Field(nullable=True)
    down_1_reason: Series[str] = pa.Field(nullable=True)
    down_2_feature: Series[str] = pa.Field(nullable=True)
    down_2_contribution: Series[float] = pa.Field(nullable=True)
    down_2_reason: Series[str] = pa.Field(nullable=True)
    down_3_feature: Series[str] = pa.Field(nullable=True)
    down_3_contribution: Series[float] = pa.Field(nullable=True)
    down_3_reason: Series[str] = pa.Field(nullable=True)

    class Config:
        strict = True
        ordered = True
        coerce = True
        unique = KEY


# What `monitor` reads back from a store: each written score's key and what it promised, as
# `Scores` says them. Rows written before a column was kept have it empty.
HISTORY_COLUMNS = [
    *KEY,
    "win_probability",
    "lost_probability",
    "no_decision_probability",
    "horizon_days",
    "band",
]
ScoreHistory = pa.DataFrameSchema(
    {
        name: column
        for name, column in Scores.to_schema().columns.items()
        if name in HISTORY_COLUMNS
    },
    strict="filter",
    coerce=True,
    unique=KEY,
)


class Rejected(pa.DataFrameModel):
    """Open deals that could not be scored, and why."""

    opportunity_id: Series[str]
    as_of: Series[UtcTimestamp]
    model_name: Series[str]
    model_version: Series[str]
    scored_at: Series[UtcTimestamp]
    rule: Series[str]
    reason: Series[str]

    class Config:
        strict = True
        ordered = True
        coerce = True


# The frames the scorer writes, named by their schema in signatures.
ScoreRows: TypeAlias = Annotated[pd.DataFrame, Scores]
RejectedRows: TypeAlias = Annotated[pd.DataFrame, Rejected]
