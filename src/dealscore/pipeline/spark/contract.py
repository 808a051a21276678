"""The data contract checked where the rows are: each row's rules per partition with the pandas
engine's own checks, the rules across tables (keys, foreign keys, event timing) as Spark joins."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import reduce
from typing import TYPE_CHECKING

import pyarrow as pa

from dealscore.pipeline.spark.read import ROW
from dealscore.schemas.coerce import coerce_table
from dealscore.schemas.contract import schema_issues
from dealscore.schemas.cross_table import (
    AFTER_CLOSE,
    BEFORE_CREATE,
    CLOSE_SKEW,
    DEAL_EVENT_TIMES,
    FOREIGN_KEYS,
    TIMING_SEVERITY,
    missing_column_issues,
)
from dealscore.schemas.report import (
    MAX_EXAMPLES,
    ContractError,
    Issue,
    Severity,
    ValidationReport,
)
from dealscore.schemas.tables import TABLE_MODELS, Opportunities

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# A cross-table rule: the issue it would raise (count 0), its offending rows, and the column
# their examples come from.
Check = tuple[Issue, "DataFrame", str]

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


def _unique_checks(frames: dict[str, DataFrame]) -> list[Check]:
    """Each column the contract declares unique: its repeated keys, every copy counted."""
    from pyspark.sql import functions as F

    checks: list[Check] = []
    for name, frame in frames.items():
        for column, spec in TABLE_MODELS[name].to_schema().columns.items():
            if spec.unique and column in frame.columns:
                keys = frame.where(F.col(column).isNotNull()).groupBy(column).count()
                # One row per duplicated key, repeated as often as it occurs: no join back.
                dupes = keys.where(F.col("count") > 1).select(
                    column, F.explode(F.array_repeat(F.lit(1), F.col("count").cast("int")))
                )
                checks.append((Issue(name, column, "unique", 0), dupes, column))
    return checks


def _foreign_key_checks(frames: dict[str, DataFrame]) -> list[Check]:
    """Each foreign key of the contract: the child rows whose key the parent table lacks."""
    from pyspark.sql import functions as F

    checks: list[Check] = []
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
        checks.append((Issue(fk.child, fk.column, fk.rule, 0), orphans, fk.column))
    return checks


def _timing_checks(frames: dict[str, DataFrame]) -> list[Check]:
    """Each deal event dated after its deal closed (past the skew) or before it was created."""
    from pyspark.sql import functions as F

    deals = frames["opportunities"].select(
        F.col(Opportunities.opportunity_id).cast("string").alias("_deal"),
        F.col(Opportunities.created_at).cast("timestamp").alias("_created"),
        F.col(Opportunities.closed_at).cast("timestamp").alias("_closed"),
    )
    skew = F.expr(f"INTERVAL {int(CLOSE_SKEW.total_seconds())} SECONDS")
    checks: list[Check] = []
    for name, time_column in DEAL_EVENT_TIMES.items():
        events = frames.get(name)
        if events is None or time_column not in events.columns:
            continue
        joined = events.select(
            F.col(Opportunities.opportunity_id).cast("string").alias("_deal"),
            F.col(time_column).cast("timestamp").alias(time_column),
        ).join(deals.dropDuplicates(["_deal"]), "_deal")
        for condition, rule in (
            (F.col(time_column) > F.col("_closed") + skew, AFTER_CLOSE),
            (F.col(time_column) < F.col("_created"), BEFORE_CREATE),
        ):
            issue = Issue(name, time_column, rule, 0, (), TIMING_SEVERITY[rule])
            checks.append((issue, joined.where(condition), "_deal"))
    return checks


def _relation_issues(frames: dict[str, DataFrame]) -> list[Issue]:
    """Every cross-table rule counted in one Spark job; examples fetched for the broken ones."""
    from pyspark.sql import functions as F

    checks = _unique_checks(frames) + _foreign_key_checks(frames) + _timing_checks(frames)
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
        missing = missing_column_issues(name, frame.columns, counts[name])
        complete &= not missing
        issues.extend(missing)
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
