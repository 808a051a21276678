"""The engagement features written in DuckDB SQL: the reference benchmarks/features.py times ours
against, and checks ours against.

Covered (as src/dealscore/features/engagement.py defines them): every windowed count
(`activities_{w}d` and `{type}s_{w}d` for each counted type and window), `days_since_last_activity`,
`activity_trend_14d` and `distinct_contacts`. The rules, as in engagement.py:

- an activity counts from when it both happened and was known: max(occurred_at, created_at), a
  missing created_at meaning known when it occurred;
- only activities known strictly before the snapshot's as_of count; a window of w days is
  [as_of - w days, as_of), in whole microseconds (a day is 86,400 s);
- activities without a deal, or of a deal not in the snapshots, never count;
- counts are 0 without activities; days since the last activity are missing (NaN) then.

Times are compared as int64 microseconds since the epoch (`epoch_us`), as the pandas path does, so
both compute the same exact integers before the one division by a day.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from dealscore.features.engagement import COUNTED_TYPES, WINDOWS
from dealscore.features.pit import DAY, Snapshots
from dealscore.schemas.tables import Activities

TREND_DAYS = 14  # activity_trend_14d: the last 14 days minus the 14 before
COUNTS = [f"activities_{w}d" for w in WINDOWS] + [
    f"{t.value}s_{w}d" for t in COUNTED_TYPES for w in WINDOWS
]
COLUMNS = [*COUNTS, "days_since_last_activity", "activity_trend_14d", "distinct_contacts"]


def _within(days: int, extra: str = "") -> str:
    """The filter of a count over the `days` before as_of (the join keeps known_us < as_of_us)."""
    return f"count(*) FILTER (WHERE a.known_us >= s.as_of_us - {days} * {DAY}{extra})"


def engagement_sql(activity_columns: list[str]) -> str:
    """The query over `snapshots` (row, opportunity_id, as_of) and `activities`; one output row
    per snapshot, in row order."""
    if Activities.created_at in activity_columns:
        known = "greatest(occurred_at, coalesce(created_at, occurred_at))"
    else:
        known = "occurred_at"
    contact = "contact_id" if Activities.contact_id in activity_columns else "NULL AS contact_id"
    counts = [f"{_within(w)} AS activities_{w}d" for w in WINDOWS] + [
        f"{_within(w, f' AND a.type = {t.value!r}')} AS {t.value}s_{w}d"
        for t in COUNTED_TYPES
        for w in WINDOWS
    ]
    trend = (
        f"{_within(TREND_DAYS)}\n"
        f"      - {_within(2 * TREND_DAYS, f' AND a.known_us < s.as_of_us - {TREND_DAYS} * {DAY}')}"
    )
    distinct = (
        "count(DISTINCT a.contact_id)"
        if Activities.contact_id in activity_columns
        else "NULL::DOUBLE"
    )
    select = ",\n    ".join(
        [
            "s.row",
            *counts,
            f"(s.as_of_us - max(a.known_us)) / {DAY}.0 AS days_since_last_activity",
            f"{trend} AS activity_trend_14d",
            f"{distinct} AS distinct_contacts",
        ]
    )
    return f"""
WITH acts AS (
    SELECT opportunity_id, type, {contact}, epoch_us({known}) AS known_us
    FROM activities
    WHERE opportunity_id IS NOT NULL
),
snaps AS (
    SELECT row, opportunity_id, epoch_us(as_of) AS as_of_us FROM snapshots
)
SELECT
    {select}
FROM snaps AS s
LEFT JOIN acts AS a ON a.opportunity_id = s.opportunity_id AND a.known_us < s.as_of_us
GROUP BY s.row, s.as_of_us
ORDER BY s.row
"""


def snapshot_table(snaps: Snapshots) -> pa.Table:
    """The snapshots as Arrow: row (their order), opportunity_id and as_of (UTC microseconds)."""
    return pa.table(
        {
            "row": pa.array(np.arange(len(snaps), dtype=np.int64)),
            "opportunity_id": pa.array(snaps.ids[snaps.deal].astype("str").array),
            "as_of": pa.array(snaps.as_of, type=pa.timestamp("us", tz="UTC")),
        }
    )


def activity_table(activities: pd.DataFrame) -> pa.Table:
    """The activity columns the query reads, as Arrow: pandas' Arrow-backed text as it is, and
    the timestamps' int64 buffers viewed as UTC timestamps (not converted row by row)."""
    wanted = [
        Activities.opportunity_id,
        Activities.type,
        Activities.contact_id,
        Activities.occurred_at,
        Activities.created_at,
    ]
    return pa.table({c: _arrow(activities[c]) for c in wanted if c in activities})


def _arrow(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    # Arrow's own conversion of a zone-aware column asks pandas for `.values`, which pandas 3.1
    # deprecates: take the UTC values and mark them UTC.
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        utc = pa.array(values.dt.tz_convert(None).to_numpy(), from_pandas=True)
        return utc.cast(pa.timestamp(utc.type.unit, "UTC"))
    return pa.array(values.array, from_pandas=True)


def connect(activities: pa.Table, snapshots: pa.Table) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with both tables registered (scanned in place, not copied)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("activities", activities)
    con.register("snapshots", snapshots)
    return con


def run(con: duckdb.DuckDBPyConnection, activity_columns: list[str]) -> pa.Table:
    """The query's result, materialised as an Arrow table."""
    result = con.sql(engagement_sql(activity_columns))
    # to_arrow_table in DuckDB 1.4 and later, where fetch_arrow_table is deprecated
    fetch = getattr(result, "to_arrow_table", None) or result.fetch_arrow_table
    return fetch()


def engagement_reference(activities: pd.DataFrame, snaps: Snapshots) -> pd.DataFrame:
    """The covered features for `snaps`, in their order, as a pandas frame (COLUMNS)."""
    acts = activity_table(activities)
    con = connect(acts, snapshot_table(snaps))
    try:
        return to_frame(run(con, acts.column_names))
    finally:
        con.close()


def to_frame(result: pa.Table) -> pd.DataFrame:
    return result.to_pandas().drop(columns="row")[COLUMNS]


def mismatches(ours: pd.DataFrame, reference: pd.DataFrame, tolerance: float = 1e-9) -> list[str]:
    """What differs between our engagement features and the reference on COLUMNS: counts exactly,
    days within `tolerance`, missing in the same rows. Empty when they agree."""
    problems = []
    if len(ours) != len(reference):
        return [f"{len(ours):,} rows here, {len(reference):,} in the reference"]
    for column in COLUMNS:
        a = ours[column].to_numpy(dtype=float)
        b = reference[column].to_numpy(dtype=float)
        same_missing = np.isnan(a) == np.isnan(b)
        if column == "days_since_last_activity":
            close = np.isnan(a) | (np.abs(a - np.nan_to_num(b)) <= tolerance)
        else:
            close = np.isnan(a) | (a == b)
        bad = np.flatnonzero(~(same_missing & close))
        if len(bad):
            i = bad[0]
            problems.append(
                f"{column}: {len(bad):,} of {len(a):,} rows differ, e.g. row {i}: "
                f"ours {a[i]:.12g}, DuckDB {b[i]:.12g}"
            )
    return problems
