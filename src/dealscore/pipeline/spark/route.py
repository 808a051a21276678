"""Routing: every row of each deal open at as_of to one group, packed as Arrow IPC blobs so one
`applyInPandas` group receives every table it needs."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from functools import reduce
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from dealscore.features.build import open_at
from dealscore.schemas.tables import Accounts, Activities, Contacts, Opportunities

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

GROUP, TABLE, BLOB = "_group", "_table", "_blob"


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


def _open_at(deals: DataFrame, as_of: pd.Timestamp) -> DataFrame:
    """Deals open at as_of, as `features.build.open_at` defines it."""
    from pyspark.sql import functions as F

    closed = F.col(Opportunities.closed_at).cast("timestamp")
    created = F.col(Opportunities.created_at).cast("timestamp")
    return deals.where(open_at(created, closed, closed.isNull(), F.lit(as_of.to_pydatetime())))


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
