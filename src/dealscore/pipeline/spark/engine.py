"""The Spark engine: the nightly scoring of `jobs.score`, spread over a Spark cluster.

Same features, model and write-back as the pandas engine; only where the work runs changes:

1. Each table is read from Parquet or a Spark table and checked against the data contract: every
   row's own rules per partition with the pandas engine's checks; keys, foreign keys and event
   timing across tables as Spark joins. Nothing is scored when an error is found.
2. The rows of each deal open at as_of (the deal, its account, stage history, activities and
   their contacts, forecasts) go to one of N groups by a hash of the opportunity id, packed as
   Arrow IPC blobs so one `applyInPandas` group receives every table it needs.
3. What a feature needs from *other* deals (the deals closed before as_of, their accounts, the
   won ones' stage history and the last forecast before each close: win rates, cycle lengths,
   time per stage, forecast bias) is collected once and broadcast; the model, with its fitted
   feature state, travels with the function.
4. Each group runs `score_deals`, the pandas engine's own function, on its rows plus the
   broadcast and the store's previous scores: features, calibrated probabilities, reasons, the
   trend and why a score moved, rejects and drift counts (deals per reference bin of each input,
   per value of each segment).
5. The driver reconciles the open deals counted in Spark with the groups' output, then `settle`
   (schema quarantine, reject limit, one atomic write) as for pandas.

A feature of deal d at T may read d's own rows and closed-before-T deals' opportunity, account
and last forecast. A feature needing more must extend `Reference`; the engines' agreement test
(tests/jobs/test_spark.py) fails until it does.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from dealscore.errors import DealscoreError, InputError
from dealscore.features.asof import export_time, stale_as_of
from dealscore.io.scores import Run, ScoreStore
from dealscore.model.bundle import LoadedModel
from dealscore.model.drift import assess, bin_counts, category_counts
from dealscore.pipeline.scoring import (
    ScoreResult,
    ScoreSettings,
    drift_inputs,
    drift_segments,
    score_deals,
    settle,
)
from dealscore.progress import Laps, Progress, silent
from dealscore.schemas.contract import (
    AFTER_CLOSE,
    BEFORE_CREATE,
    CLOSE_SKEW,
    DEAL_EVENT_TIMES,
    FOREIGN_KEYS,
    MAX_EXAMPLES,
    ContractError,
    Issue,
    Severity,
    ValidationReport,
    coerce_table,
    schema_issues,
    to_utc_timestamps,
)
from dealscore.schemas.scores import FACTOR_COLUMNS, Scores
from dealscore.schemas.tables import (
    TABLE_MODELS,
    TABLE_NAMES,
    Accounts,
    Activities,
    Contacts,
    CrmTables,
    Forecasts,
    Opportunities,
    StageHistory,
    Status,
    utc,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

GROUP, ROW, TABLE, BLOB, KIND = "_group", "_row", "_table", "_blob", "_kind"
SPARK_TABLE_PREFIX = "spark:"
# What each group returns: score rows, reject rows, and one row of drift counts.
SCORED, REJECTED, DRIFT = "score", "reject", "drift"
OUTPUT_COLUMNS: dict[str, str] = {
    KIND: "string",
    "opportunity_id": "string",
    "as_of": "timestamp",
    "scored_at": "timestamp",
    "model_name": "string",
    "model_version": "string",
    "run_id": "string",
    "win_probability": "double",
    "lost_probability": "double",
    "no_decision_probability": "double",
    "horizon_days": "double",
    "band": "string",
    "expected_amount": "double",
    "previous_probability": "double",
    "previous_as_of": "timestamp",
    "trend": "string",
    "change_reason": "string",
    **{c: "double" if c.endswith("_contribution") else "string" for c in FACTOR_COLUMNS},
    "rule": "string",
    "reason": "string",
    "payload": "string",
}
REJECT_COLUMNS = [
    "opportunity_id",
    "as_of",
    "model_name",
    "model_version",
    "scored_at",
    "rule",
    "reason",
]


class SparkUnavailableError(DealscoreError, RuntimeError):
    """pyspark (or Java) is missing: `pip install 'dealscore[spark]'` and a JDK 17+."""


# --- session -------------------------------------------------------------------------------


def spark_session(master: str = "") -> SparkSession:
    """The active session, or a new one on `master` (default local[*]) set up for dealscore."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailableError(
            "the Spark engine needs pyspark: pip install 'dealscore[spark]' (and Java 17+)"
        ) from exc
    active = SparkSession.getActiveSession()
    if active is not None and not master:
        return active
    builder = (
        SparkSession.builder.appName("dealscore")
        .master(master or "local[*]")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        # Bigger Arrow batches: per-batch overhead of the pandas contract checks dominates at 10k.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "100000")
    )
    if (master or "local").startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        # Local workers must run this interpreter, the one dealscore is installed in; pyspark
        # reads the variable when it starts the context (its spark.pyspark.python conf is not).
        os.environ["PYSPARK_PYTHON"] = sys.executable
    try:
        return builder.getOrCreate()
    except Exception as exc:  # py4j raises plain exceptions when Java is missing or broken
        raise SparkUnavailableError(
            f"cannot start Spark on {master or 'local[*]'}: {str(exc).splitlines()[0]} "
            "(Spark 4 needs Java 17 or 21: JAVA_HOME, or java on the PATH)"
        ) from exc


@contextmanager
def _utc(spark: SparkSession) -> Iterator[None]:
    """Session time zone UTC while we convert timestamps; the caller's setting is restored."""
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset("spark.sql.session.timeZone")
        else:
            spark.conf.set("spark.sql.session.timeZone", before)


@contextmanager
def _reporting(spark: SparkSession, progress: Progress, every: float = 15.0) -> Iterator[None]:
    """While a long Spark job runs, a line every `every` seconds: tasks done of the running
    stages (Spark's own console bar is off: it garbles logs)."""
    try:
        tracker = spark.sparkContext.statusTracker()
    except (AttributeError, NotImplementedError):  # Spark Connect: no tracker, no lines
        yield
        return
    done = threading.Event()

    def report() -> None:
        while not done.wait(every):
            found = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
            stages = [s for s in found if s is not None]
            if stages:
                finished = sum(s.numCompletedTasks for s in stages)
                total = sum(s.numTasks for s in stages)
                progress(f"  spark: {finished:,} of {total:,} tasks done in {len(stages)} stage(s)")

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def default_groups(spark: SparkSession) -> int:
    """Four groups per core Spark offers: small enough to balance, big enough to amortise."""
    try:
        cores = spark.sparkContext.defaultParallelism
    except (AttributeError, NotImplementedError):  # Spark Connect has no SparkContext
        cores = int(spark.conf.get("spark.default.parallelism", "50") or 50)
    return max(4 * cores, 1)


# --- reading --------------------------------------------------------------------------------


def read_spark_tables(spark: SparkSession, data: str) -> dict[str, DataFrame]:
    """Contract tables from a folder of Parquet (`name.parquet` file or folder) or, for
    `spark:DATABASE` (`spark:` alone: the current one), from Spark tables named after them.

    Each gets a `_row` number in read order, so rows of one deal tied at the same instant are
    taken in the order the pandas engine takes them."""
    from pyspark.sql import functions as F

    frames: dict[str, DataFrame] = {}
    if data.startswith(SPARK_TABLE_PREFIX):
        database = data.removeprefix(SPARK_TABLE_PREFIX)
        for name in TABLE_NAMES:
            qualified = f"{database}.{name}" if database else name
            if spark.catalog.tableExists(qualified):
                frames[name] = spark.table(qualified)
        where = f"Spark database {database or spark.catalog.currentDatabase()!r}"
    else:
        folder = Path(data)
        if not folder.is_dir():
            raise InputError(f"{data}: no such folder (or use spark:DATABASE for tables)")
        for name in TABLE_NAMES:
            for candidate in (folder / f"{name}.parquet", folder / f"{name}.pq", folder / name):
                if candidate.exists():
                    frames[name] = spark.read.parquet(str(candidate))
                    break
        if not frames and any(folder.glob("*.csv*")):
            raise InputError(
                f"{data}: the Spark engine reads Parquet; convert the CSV export with "
                "`dealscore ingest --out FOLDER` (it writes Parquet)"
            )
        where = str(folder)
    if "opportunities" not in frames:
        raise InputError(f"{where} has no 'opportunities' table, the one mandatory table")
    return {
        name: frame.withColumn(ROW, F.monotonically_increasing_id())
        for name, frame in frames.items()
    }


# --- the contract, checked where the rows are -----------------------------------------------

ISSUE_SCHEMA = pa.schema(
    [
        ("table", pa.string()),
        ("column", pa.string()),
        ("rule", pa.string()),
        ("count", pa.int64()),
        ("examples", pa.list_(pa.string())),
        ("severity", pa.string()),
    ]
)


def _row_checks(name: str) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """For mapInArrow: the pandas engine's per-row rules on each batch, as issue rows.

    Uniqueness is left to the whole-table check (a batch sees only part of the table)."""
    model = TABLE_MODELS[name]

    # No annotations on the UDF itself: pyspark would read them as a UDF type to infer.
    def check(batches):  # Iterator[pa.RecordBatch] -> Iterator[pa.RecordBatch]
        for batch in batches:
            frame = batch.to_pandas().drop(columns=[ROW], errors="ignore")
            coerced, parse_issues, unparsed = coerce_table(name, frame, model)
            _, rule_issues = schema_issues(name, coerced, model, unparsed)
            rows = [
                {
                    "table": i.table,
                    "column": i.column,
                    "rule": i.rule,
                    "count": i.count,
                    "examples": list(i.examples),
                    "severity": str(i.severity),
                }
                for i in parse_issues + rule_issues
                if i.rule != "unique"
            ]
            yield pa.RecordBatch.from_pylist(rows, schema=ISSUE_SCHEMA)

    return check


def _ddl(schema: pa.Schema) -> str:
    """Spark's DDL for a flat Arrow schema of strings, integers and string lists."""
    kinds = {pa.string(): "string", pa.int64(): "bigint", pa.list_(pa.string()): "array<string>"}
    return ", ".join(f"`{f.name}` {kinds[f.type]}" for f in schema)


def _merge_issues(rows: list[dict]) -> list[Issue]:
    """Partitions' issues summed per (table, column, rule)."""
    merged: dict[tuple[str, str, str, str], tuple[int, list[str]]] = {}
    for row in rows:
        key = (row["table"], row["column"], row["rule"], row["severity"])
        count, examples = merged.get(key, (0, []))
        more = [e for e in row["examples"] or [] if e not in examples]
        merged[key] = (count + int(row["count"]), (examples + more)[:MAX_EXAMPLES])
    return [
        Issue(table, column, rule, count, tuple(examples), Severity(severity))
        for (table, column, rule, severity), (count, examples) in merged.items()
    ]


def _examples(frame: DataFrame, column: str) -> tuple[str, ...]:
    rows = frame.select(column).distinct().limit(MAX_EXAMPLES).collect()
    return tuple(str(r[0]) for r in rows)


def _relation_checks(frames: dict[str, DataFrame]) -> list[tuple[Issue, DataFrame, str]]:
    """Each cross-table rule as (the issue it would raise, count 0, its offending rows, the
    column their examples come from): keys unique, foreign keys resolved, deal events inside
    the deal's life."""
    from pyspark.sql import functions as F

    checks: list[tuple[Issue, DataFrame, str]] = []
    for name, frame in frames.items():
        for column, spec in TABLE_MODELS[name].to_schema().columns.items():
            if spec.unique and column in frame.columns:
                keys = frame.where(F.col(column).isNotNull()).groupBy(column).count()
                # One row per duplicated key, repeated as often as it occurs: no join back.
                dupes = keys.where(F.col("count") > 1).select(
                    column, F.explode(F.array_repeat(F.lit(1), F.col("count").cast("int")))
                )
                checks.append((Issue(name, column, "unique", 0), dupes, column))
    for fk in FOREIGN_KEYS:
        child, parent = frames.get(fk.child), frames.get(fk.parent)
        if child is None or parent is None or fk.column not in child.columns:
            continue
        if fk.parent_column not in parent.columns:
            continue
        keys = parent.select(F.col(fk.parent_column).cast("string").alias("_key")).distinct()
        orphans = (
            child.select(F.col(fk.column).cast("string").alias(fk.column))
            .where(F.col(fk.column).isNotNull())
            .join(keys, F.col(fk.column) == keys["_key"], "left_anti")
        )
        rule = f"foreign key: exists in {fk.parent}.{fk.parent_column}"
        checks.append((Issue(fk.child, fk.column, rule, 0), orphans, fk.column))
    deals = frames["opportunities"].select(
        F.col(Opportunities.opportunity_id).cast("string").alias("_deal"),
        F.col(Opportunities.created_at).cast("timestamp").alias("_created"),
        F.col(Opportunities.closed_at).cast("timestamp").alias("_closed"),
    )
    for name, time_column in DEAL_EVENT_TIMES.items():
        events = frames.get(name)
        if events is None or time_column not in events.columns:
            continue
        joined = events.select(
            F.col(Opportunities.opportunity_id).cast("string").alias("_deal"),
            F.col(time_column).cast("timestamp").alias(time_column),
        ).join(deals.dropDuplicates(["_deal"]), "_deal")
        for condition, rule, severity in (
            (
                F.col(time_column)
                > F.col("_closed") + F.expr(f"INTERVAL {int(CLOSE_SKEW.total_seconds())} SECONDS"),
                AFTER_CLOSE,
                Severity.ERROR,
            ),
            (F.col(time_column) < F.col("_created"), BEFORE_CREATE, Severity.WARNING),
        ):
            checks.append(
                (Issue(name, time_column, rule, 0, (), severity), joined.where(condition), "_deal")
            )
    return checks


def _relation_issues(frames: dict[str, DataFrame]) -> list[Issue]:
    """Every cross-table rule counted in one Spark job; examples fetched for the broken ones."""
    from pyspark.sql import functions as F

    checks = _relation_checks(frames)
    if not checks:
        return []
    counted = [
        rows.agg(F.count(F.lit(1)).alias("n")).select(F.lit(i).alias("check"), "n")
        for i, (_, rows, _) in enumerate(checks)
    ]
    counts: dict[int, int] = dict(reduce(lambda a, b: a.unionByName(b), counted).collect())
    issues = []
    for i, (issue, rows, column) in enumerate(checks):
        if counts.get(i):
            issues.append(replace(issue, count=int(counts[i]), examples=_examples(rows, column)))
    return issues


def check_contract(frames: dict[str, DataFrame], source: str) -> dict[str, int]:
    """Row counts per table; raises ContractError listing every error, as the pandas engine."""
    issues: list[Issue] = []
    counts = {name: frame.count() for name, frame in frames.items()}
    complete = True
    for name, frame in frames.items():
        schema = TABLE_MODELS[name].to_schema()
        missing = [c for c, s in schema.columns.items() if s.required and c not in frame.columns]
        complete &= not missing
        issues.extend(Issue(name, c, "required column present", counts[name]) for c in missing)
    if complete:
        checked = [
            frame.mapInArrow(_row_checks(name), _ddl(ISSUE_SCHEMA))
            for name, frame in frames.items()
        ]
        rows = reduce(lambda a, b: a.unionByName(b), checked).collect()
        issues.extend(_merge_issues([row.asDict() for row in rows]))
        issues.extend(_relation_issues(frames))
    report = ValidationReport(tuple(issues), counts)
    if not report.ok:
        raise ContractError(report, source)
    return counts


# --- routing --------------------------------------------------------------------------------


def _pack(name: str) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """For mapInArrow: each batch's rows split by group, each part one Arrow IPC blob."""
    out = pa.schema([(GROUP, pa.int32()), (TABLE, pa.string()), (BLOB, pa.binary())])

    def pack(batches):  # Iterator[pa.RecordBatch] -> Iterator[pa.RecordBatch], unannotated
        for batch in batches:
            table = pa.Table.from_batches([batch])
            groups = table.column(GROUP).to_numpy()
            order = np.argsort(groups, kind="stable")
            table, groups = table.take(pa.array(order)).drop_columns([GROUP]), groups[order]
            starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if len(groups) else []
            ends = [*starts[1:], len(groups)]
            blobs = []
            for start, end in zip(starts, ends, strict=True):
                sink = io.BytesIO()
                with pa.ipc.new_stream(sink, table.schema) as writer:
                    writer.write_table(table.slice(start, end - start))
                blobs.append(sink.getvalue())
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(groups[starts] if len(blobs) else [], pa.int32()),
                    pa.array([name] * len(blobs), pa.string()),
                    pa.array(blobs, pa.binary()),
                ],
                schema=out,
            )

    return pack


def _unpack(blobs: pd.Series) -> pd.DataFrame:
    parts = [pa.ipc.open_stream(blob).read_all() for blob in blobs]
    return pa.concat_tables(parts).to_pandas()


def route(frames: dict[str, DataFrame], as_of: pd.Timestamp, groups: int) -> DataFrame:
    """(group, table, blob) rows carrying every row of each open deal, grouped by deal (owners
    are not routed: no feature reads them)."""
    from pyspark.sql import functions as F

    deals = frames["opportunities"]
    opened = _open_at(deals, as_of).withColumn(
        GROUP, F.pmod(F.xxhash64(Opportunities.opportunity_id), F.lit(groups)).cast("int")
    )
    by_deal = opened.select(F.col(Opportunities.opportunity_id).alias("_deal"), GROUP)
    routed = {"opportunities": opened}
    for name in ("stage_history", "activities", "forecasts"):
        frame = frames.get(name)
        if frame is not None and Opportunities.opportunity_id in frame.columns:
            routed[name] = frame.join(
                by_deal, frame[Opportunities.opportunity_id] == by_deal["_deal"]
            ).drop("_deal")
    accounts = frames.get("accounts")
    if accounts is not None and Opportunities.account_id in deals.columns:
        wanted = opened.select(F.col(Opportunities.account_id).alias("_key"), GROUP).distinct()
        routed["accounts"] = accounts.join(
            wanted, accounts[Accounts.account_id] == wanted["_key"]
        ).drop("_key")
    contacts = frames.get("contacts")
    if (
        contacts is not None
        and "activities" in routed
        and Activities.contact_id in routed["activities"].columns
    ):
        wanted = (
            routed["activities"]
            .select(F.col(Activities.contact_id).alias("_key"), GROUP)
            .where(F.col("_key").isNotNull())
            .distinct()
        )
        routed["contacts"] = contacts.join(
            wanted, contacts[Contacts.contact_id] == wanted["_key"]
        ).drop("_key")
    packed = [
        frame.mapInArrow(_pack(name), f"{GROUP} int, {TABLE} string, {BLOB} binary")
        for name, frame in routed.items()
    ]
    return reduce(lambda a, b: a.unionByName(b), packed)


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


def reference(
    spark: SparkSession,
    frames: dict[str, DataFrame],
    as_of: pd.Timestamp,
    maturity_days: float,
) -> Reference:
    """Collected once on the driver, validated, and shipped to every group."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    at = F.lit(as_of.to_pydatetime())
    deals = frames["opportunities"]
    closed_at = F.col(Opportunities.closed_at).cast("timestamp")
    closed = deals.where(closed_at < at)
    # History rates also count deals still open at as_of whose first maturity_days are over
    # (features/icp.py matured_outcomes): not won within them. They travel as lost deals closed
    # just before as_of, which every feature reads the same way and no group scores; a group
    # keeps its own open copy (group_tables).
    matured = F.lit((as_of - pd.Timedelta(days=maturity_days)).to_pydatetime())
    still_open = deals.where(
        (closed_at.isNull() | (closed_at >= at))
        & (F.col(Opportunities.created_at).cast("timestamp") < matured)
    ).withColumns(
        {
            Opportunities.status: F.lit(Status.LOST.value),
            Opportunities.closed_at: F.lit(
                (as_of - pd.Timedelta(microseconds=1)).to_pydatetime()
            ).cast(deals.schema[Opportunities.closed_at].dataType),
        }
    )
    past = closed.unionByName(still_open)
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
        ends = closed.select(
            F.col(Opportunities.opportunity_id).alias("_deal"),
            F.col(Opportunities.closed_at).cast("timestamp").alias("_closed"),
        )
        before = forecasts.join(ends, forecasts[Forecasts.opportunity_id] == ends["_deal"]).where(
            F.col(Forecasts.submitted_at).cast("timestamp") < F.col("_closed")
        )
        last = F.max(Forecasts.submitted_at).over(Window.partitionBy("_deal"))
        tables["forecasts"] = (
            before.withColumn("_last", last)
            .where(F.col(Forecasts.submitted_at) == F.col("_last"))
            .drop("_deal", "_closed", "_last")
        )
    with _utc(spark):
        checked = {name: _coerced(name, _collect(frame)) for name, frame in tables.items()}
    return Reference(
        checked["opportunities"],
        checked.get("accounts"),
        checked.get("stage_history"),
        checked.get("forecasts"),
    )


def _collect(frame: DataFrame) -> pd.DataFrame:
    """A Spark frame as pandas, timestamps UTC-aware like the pandas engine reads them."""
    return frame.toArrow().to_pandas()


def _coerced(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A table's columns in the contract's types, as the pandas engine holds them after
    validation; its rules were checked in Spark, so a value that fails to parse is a bug."""
    coerced, issues, _ = coerce_table(name, frame, TABLE_MODELS[name])
    if issues:
        raise RuntimeError(f"{name}: rows passed the Spark checks but not pandas': {issues[0]}")
    return coerced


# --- scoring a group ------------------------------------------------------------------------


def group_tables(packed: pd.DataFrame, ref: Reference) -> CrmTables:
    """A group's own rows in contract types plus the broadcast closed deals, in read order."""
    own = {
        name: _unpack(part[BLOB]).sort_values(ROW, kind="stable")
        for name, part in packed.groupby(TABLE, sort=False)
    }
    frames = {name: _coerced(name, frame) for name, frame in own.items()}
    if "opportunities" in frames:  # a matured open deal is broadcast too: keep the group's own
        ids = set(frames["opportunities"][Opportunities.opportunity_id])
        ref = replace(
            ref,
            opportunities=ref.opportunities[
                ~ref.opportunities[Opportunities.opportunity_id].isin(ids)
            ],
        )
    for name, extra in (
        ("opportunities", ref.opportunities),
        ("accounts", ref.accounts),
        ("stage_history", ref.stage_history),
        ("forecasts", ref.forecasts),
    ):
        if extra is None or not len(extra):
            continue
        mine = frames.get(name)
        both = extra if mine is None else pd.concat([mine, extra], ignore_index=True)
        frames[name] = both
    if "accounts" in frames:  # an account with open and closed deals is in both
        frames["accounts"] = frames["accounts"].drop_duplicates(Accounts.account_id)
    return CrmTables.from_dict(
        {
            name: frame.sort_values(ROW, kind="stable").drop(columns=[ROW]).reset_index(drop=True)
            for name, frame in frames.items()
        }
    )


def score_group(
    packed: pd.DataFrame,
    ref: Reference,
    loaded: LoadedModel,
    as_of: pd.Timestamp,
    scored_at: pd.Timestamp,
    settings: ScoreSettings,
    previous: pd.DataFrame,
) -> pd.DataFrame:
    """One group's score rows, reject rows and drift counts, in `OUTPUT_COLUMNS`."""
    tables = group_tables(packed, ref)
    scores, rejected, features = score_deals(
        tables, loaded, as_of, settings, scored_at=scored_at, previous=previous
    )
    inputs = drift_inputs(features, scores).drop(columns=["win_probability"])
    counts = bin_counts(loaded.bundle.reference, inputs)
    categories = category_counts(drift_segments(tables, features))
    drift = pd.DataFrame(
        {
            KIND: [DRIFT],
            "payload": [
                json.dumps(
                    {
                        "open": len(features),
                        "counts": {k: v.tolist() for k, v in counts.items()},
                        "categories": categories,
                    }
                )
            ],
        }
    )
    parts = [scores.assign(**{KIND: SCORED}), rejected.assign(**{KIND: REJECTED}), drift]
    out = pd.concat([p for p in parts if len(p)], ignore_index=True)
    out = out.reindex(columns=list(OUTPUT_COLUMNS))
    # pandas 3 keeps strings in chunked Arrow arrays, which pyspark's converter refuses.
    text = [name for name, kind in OUTPUT_COLUMNS.items() if kind == "string"]
    return out.astype({name: object for name in text})


def _output_schema() -> str:
    return ", ".join(f"{name} {kind}" for name, kind in OUTPUT_COLUMNS.items())


# --- the job --------------------------------------------------------------------------------


def _export_time(spark: SparkSession, frames: dict[str, DataFrame]) -> pd.Timestamp:
    """`features.asof.export_time` of the export, from one aggregate in Spark."""
    from pyspark.sql import functions as F

    deals = frames["opportunities"]
    latest = deals.agg(
        F.max(F.col(Opportunities.created_at).cast("timestamp")).alias("created"),
        F.max(F.col(Opportunities.closed_at).cast("timestamp")).alias("closed"),
    )
    with _utc(spark):
        row = _collect(latest).iloc[0]
    return export_time(max(t for t in (row["created"], row["closed"]) if pd.notna(t)))


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
    scores, rejected = settle(scores, rejected, open_deals, store, run, settings, progress)
    lap("validate + write")
    counts = {k: np.asarray(v, dtype=float) for k, v in drift_counts["counts"].items()}
    ref_bins = loaded.bundle.reference
    if "win_probability" in ref_bins.edges:  # after the quarantine, as the pandas engine does
        p = np.r_[scores["win_probability"].to_numpy(dtype=float), np.full(len(rejected), np.nan)]
        counts |= bin_counts(ref_bins, pd.DataFrame({"win_probability": p}))
    drift, warnings = assess(ref_bins, counts, drift_counts["categories"], settings.psi_warning)
    return ScoreResult(
        scores,
        rejected,
        open_deals,
        store.describe(),
        loaded,
        as_of,
        drift,
        lap.seconds,
        drift_warnings=warnings,
    )


def coverage(frames: dict[str, DataFrame]) -> tuple[str, ...]:
    """`CrmTables.coverage` on Spark: every `table.column` holding a value, one pass a table."""
    from pyspark.sql import functions as F

    filled = []
    for name in TABLE_NAMES:
        if name not in frames:
            continue
        frame = frames[name]
        row = frame.select(
            [F.max(F.col(c).isNotNull().cast("int")).alias(c) for c in frame.columns]
        ).first()
        filled += [f"{name}.{c}" for c in frame.columns if row is not None and row[c]]
    return tuple(filled)


def _open_at(deals: DataFrame, as_of: pd.Timestamp) -> DataFrame:
    """Deals open at as_of, as `snapshots_at` defines it: created before, not closed before."""
    from pyspark.sql import functions as F

    at = F.lit(as_of.to_pydatetime())
    closed = F.col(Opportunities.closed_at).cast("timestamp")
    return deals.where(F.col(Opportunities.created_at).cast("timestamp") < at).where(
        closed.isNull() | (closed >= at)
    )


def _split(collected: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The groups' output as the pandas engine's (scores, rejected) and summed drift counts."""
    kind = collected[KIND]
    total: dict = {"open": 0, "counts": {}, "categories": {}}
    for payload in collected.loc[kind == DRIFT, "payload"]:
        part = json.loads(payload)
        total["open"] += part["open"]
        for name, values in part["counts"].items():
            total["counts"][name] = np.add(total["counts"].get(name, 0), values)
        for name, found in part["categories"].items():  # rows per segment value, summed
            total["categories"].setdefault(name, Counter()).update(found)
    for column in ("as_of", "scored_at", "previous_as_of"):
        collected[column] = to_utc_timestamps(collected[column])
    scores = collected[kind == SCORED].reset_index(drop=True)
    scores = scores[[c for c in Scores.to_schema().columns]]
    rejected = collected.loc[kind == REJECTED, REJECT_COLUMNS].reset_index(drop=True)
    return scores, rejected, total
