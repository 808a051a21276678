"""What features of an open deal read from other deals, collected once on the driver and
broadcast to every group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from dealscore.features.build import open_at
from dealscore.pipeline.spark.session import _collect, _utc
from dealscore.schemas.coerce import coerce_table
from dealscore.schemas.tables import (
    TABLE_MODELS,
    Accounts,
    Forecasts,
    Opportunities,
    StageHistory,
    Status,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class Reference:
    """What features of an open deal read from other deals: the deals closed before as_of
    (win rates, cycle length), their accounts (segment rates), the stage history of the won ones
    (time won deals spent per stage) and each one's forecasts at the last instant before it
    closed (the owner's forecast bias)."""

    opportunities: pd.DataFrame
    accounts: pd.DataFrame | None
    stage_history: pd.DataFrame | None
    forecasts: pd.DataFrame | None


def _past_deals(
    deals: DataFrame, as_of: pd.Timestamp, maturity_days: float
) -> tuple[DataFrame, DataFrame]:
    """(the deals closed before as_of, those plus the matured open ones as lost just before it)."""
    from pyspark.sql import functions as F

    at = F.lit(as_of.to_pydatetime())
    closed_at = F.col(Opportunities.closed_at).cast("timestamp")
    created_at = F.col(Opportunities.created_at).cast("timestamp")
    closed = deals.where(closed_at < at)
    # History rates also count deals still open at as_of whose first maturity_days are over
    # (features/icp.py matured_outcomes): not won within them. They travel as lost deals closed
    # just before as_of, which every feature reads the same way and no group scores; a group
    # keeps its own open copy (group_tables).
    matured = F.lit((as_of - pd.Timedelta(days=maturity_days)).to_pydatetime())
    still_open = deals.where(
        open_at(created_at, closed_at, closed_at.isNull(), at) & (created_at < matured)
    ).withColumns(
        {
            Opportunities.status: F.lit(Status.LOST.value),
            Opportunities.closed_at: F.lit(
                (as_of - pd.Timedelta(microseconds=1)).to_pydatetime()
            ).cast(deals.schema[Opportunities.closed_at].dataType),
        }
    )
    return closed, closed.unionByName(still_open)


def _last_forecasts(forecasts: DataFrame, closed: DataFrame) -> DataFrame:
    """Each closed deal's forecasts at the last instant before it closed."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ends = closed.select(
        F.col(Opportunities.opportunity_id).alias("_deal"),
        F.col(Opportunities.closed_at).cast("timestamp").alias("_closed"),
    )
    before = forecasts.join(ends, forecasts[Forecasts.opportunity_id] == ends["_deal"]).where(
        F.col(Forecasts.submitted_at).cast("timestamp") < F.col("_closed")
    )
    last = F.max(Forecasts.submitted_at).over(Window.partitionBy("_deal"))
    return (
        before.withColumn("_last", last)
        .where(F.col(Forecasts.submitted_at) == F.col("_last"))
        .drop("_deal", "_closed", "_last")
    )


def reference(
    spark: SparkSession,
    frames: dict[str, DataFrame],
    as_of: pd.Timestamp,
    maturity_days: float,
) -> Reference:
    """Collected once on the driver, validated, and shipped to every group."""
    from pyspark.sql import functions as F

    closed, past = _past_deals(frames["opportunities"], as_of, maturity_days)
    tables: dict[str, DataFrame] = {"opportunities": past}
    accounts = frames.get("accounts")
    if accounts is not None and Opportunities.account_id in past.columns:
        ids = past.select(F.col(Opportunities.account_id).alias("_key")).distinct()
        tables["accounts"] = accounts.join(
            ids, accounts[Accounts.account_id] == ids["_key"], "left_semi"
        )
    history = frames.get("stage_history")
    if history is not None:
        won = closed.where(F.col(Opportunities.status) == Status.WON.value)
        ids = won.select(F.col(Opportunities.opportunity_id).alias("_deal"))
        tables["stage_history"] = history.join(
            ids, history[StageHistory.opportunity_id] == ids["_deal"], "left_semi"
        )
    forecasts = frames.get("forecasts")
    if forecasts is not None:
        tables["forecasts"] = _last_forecasts(forecasts, closed)
    with _utc(spark):
        checked = {name: _coerced(name, _collect(frame)) for name, frame in tables.items()}
    return Reference(
        checked["opportunities"],
        checked.get("accounts"),
        checked.get("stage_history"),
        checked.get("forecasts"),
    )


def _coerced(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A table's columns in the contract's types, as the pandas engine holds them after
    validation; its rules were checked in Spark, so a value that fails to parse is a bug."""
    coerced, issues, _ = coerce_table(name, frame, TABLE_MODELS[name])
    if issues:
        raise RuntimeError(f"{name}: rows passed the Spark checks but not pandas': {issues[0]}")
    return coerced
