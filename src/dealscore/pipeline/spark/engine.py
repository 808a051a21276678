"""The job on Spark: read, check, score in groups, reconcile, settle against the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dealscore.features.asof import DEAL_FACTS, export_time, latest, stale_as_of
from dealscore.io.scores import Run, ScoreStore
from dealscore.model.bundle import LoadedModel
from dealscore.model.drift import assess, bin_counts
from dealscore.pipeline.scoring import ScoreResult, ScoreSettings
from dealscore.pipeline.settle import finish
from dealscore.pipeline.spark.contract import check_contract
from dealscore.pipeline.spark.group import _output_schema, _split, score_group
from dealscore.pipeline.spark.read import read_spark_tables
from dealscore.pipeline.spark.reference import reference
from dealscore.pipeline.spark.route import GROUP, _open_at, route
from dealscore.pipeline.spark.session import (
    _collect,
    _reporting,
    _utc,
    default_groups,
    spark_session,
)
from dealscore.progress import Laps, Progress, silent
from dealscore.schemas.tables import coverage_of, utc

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def _export_time(spark: SparkSession, frames: dict[str, DataFrame]) -> pd.Timestamp:
    """`features.asof.export_time` of the export, from one aggregate in Spark."""
    from pyspark.sql import functions as F

    latest_facts = frames["opportunities"].agg(
        *[F.max(F.col(column).cast("timestamp")).alias(column) for column in DEAL_FACTS]
    )
    with _utc(spark):
        row = _collect(latest_facts).iloc[0]
    return export_time(latest(row[column] for column in DEAL_FACTS))


def coverage(frames: dict[str, DataFrame]) -> tuple[str, ...]:
    """`CrmTables.coverage` on Spark: every `table.column` holding a value, one pass a table."""
    from pyspark.sql import functions as F

    filled = {}
    for name, frame in frames.items():
        row = frame.select(
            [F.max(F.col(c).isNotNull().cast("int")).alias(c) for c in frame.columns]
        ).first()
        filled[name] = [c for c in frame.columns if row is not None and row[c]]
    return coverage_of(filled)


def _checked(
    spark: SparkSession,
    data: str,
    loaded: LoadedModel,
    as_of: pd.Timestamp | None,
    progress: Progress,
) -> tuple[dict[str, DataFrame], pd.Timestamp]:
    """The export's tables, checked against the data contract, and the as_of to score at."""
    frames = read_spark_tables(spark, data)
    now = _export_time(spark, frames)
    as_of = utc(as_of if as_of is not None else now)
    if warning := stale_as_of(as_of, now):
        progress(f"WARNING: {warning}")
    progress(f"checking the data contract on {', '.join(frames)} in Spark")
    with _reporting(spark, progress):
        check_contract(frames, data)
        if warning := loaded.mismatch(coverage(frames)):
            progress(f"WARNING: {warning}")
    return frames, as_of


def _drift(
    loaded: LoadedModel,
    scores: pd.DataFrame,
    rejected: pd.DataFrame,
    drift_counts: dict,
    psi_warning: float,
) -> tuple[pd.Series, tuple[str, ...]]:
    """PSI and warnings from the groups' summed counts and the written scores."""
    counts = {k: np.asarray(v, dtype=float) for k, v in drift_counts["counts"].items()}
    ref_bins = loaded.bundle.reference
    if "win_probability" in ref_bins.edges:  # after the quarantine, as the pandas engine does
        p = np.r_[scores["win_probability"].to_numpy(dtype=float), np.full(len(rejected), np.nan)]
        counts |= bin_counts(ref_bins, pd.DataFrame({"win_probability": p}))
    return assess(ref_bins, counts, drift_counts["categories"], psi_warning)


def score_on_spark(
    data: str,
    loaded: LoadedModel,
    store: ScoreStore,
    settings: ScoreSettings,
    as_of: pd.Timestamp | None = None,
    progress: Progress = silent,
    lap: Laps | None = None,
    *,
    scored_at: pd.Timestamp,
) -> ScoreResult:
    """The pandas engine's scoring on Spark: read, check, score in groups, reconcile, settle
    against the store. The job loads the model and the store, reads the clock (`scored_at`)
    and logs the run."""
    lap = lap or Laps()
    progress(f"starting Spark ({settings.spark_master or 'the active session, else local[*]'})")
    spark = spark_session(settings.spark_master)
    lap("start Spark")
    frames, as_of = _checked(spark, data, loaded, as_of, progress)
    lap("read + validate")
    groups = settings.spark_groups or default_groups(spark)
    ref = reference(spark, frames, as_of, loaded.bundle.feature_state.maturity)
    progress(
        f"scoring deals open at {as_of:%Y-%m-%d %H:%M} UTC with {loaded.describe()} "
        f"in {groups} groups ({len(ref.opportunities):,} closed deals broadcast)"
    )
    progress(f"scored by {loaded.rung()}")
    routed = route(frames, as_of, groups)
    run = Run(as_of, loaded.name, loaded.version)
    previous = store.previous(run)  # shipped to every group with the model

    def score(packed):  # pd.DataFrame -> pd.DataFrame; unannotated for pyspark
        return score_group(packed, ref, loaded, as_of, scored_at, settings, previous)

    with _utc(spark), _reporting(spark, progress):
        out = routed.groupBy(GROUP).applyInPandas(score, _output_schema())
        collected = _collect(out)
        open_deals = _open_at(frames["opportunities"], as_of).count()
    lap("features + score + reasons")
    scores, rejected, drift_counts = _split(collected)
    if drift_counts["open"] != open_deals:  # a routing bug: some deal lost or doubled
        raise RuntimeError(
            f"reconciliation failed: {open_deals:,} deals open at as_of in Spark, "
            f"{drift_counts['open']:,} scored or rejected by the groups"
        )

    def drift(written: pd.DataFrame, out: pd.DataFrame) -> tuple[pd.Series, tuple[str, ...]]:
        return _drift(loaded, written, out, drift_counts, settings.psi_warning)

    return finish(scores, rejected, open_deals, store, run, settings, loaded, lap, drift, progress)
