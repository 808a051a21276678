"""Bulk loading of score rows: from pandas through Arrow, never a Python object per value.

The frame becomes an Arrow table typed by the SQL table's columns (text, float64 with NaN as
null, UTC microsecond timestamps). For PostgreSQL, Arrow's kernels build the rows in COPY's
binary format; for SQLite, ADBC's SQLite driver binds them from Arrow into a staging file.
Either is then moved into the real table by INSERT ... SELECT inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import adbc_driver_sqlite.dbapi as adbc_sqlite
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

# PostgreSQL's binary timestamps count microseconds from 2000-01-01 UTC.
PG_EPOCH_US = 946_684_800_000_000
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags, no header extension
COPY_TRAILER = b"\xff\xff"
NULL_FIELD = pa.scalar(b"\xff\xff\xff\xff", pa.large_binary())  # length -1, no bytes
NOTHING = pa.scalar(b"", pa.large_binary())


def _target(kind: sa.types.TypeEngine) -> pa.DataType:
    """The Arrow type a column of ours is sent as."""
    if isinstance(kind, sa.DateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(kind, sa.Float):
        return pa.float64()
    return pa.large_string()


def _plain(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array (chunk boundaries do not matter to the kernels below)."""
    if isinstance(values, pa.Array):
        return values
    return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)


def _column(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    """One column as Arrow: missing values null; a zone-aware one from pandas' UTC values (Arrow's
    own conversion of such a column asks pandas for `.values`, which pandas 3.1 deprecates).
    Text pandas holds in Arrow chunks stays in them: joined, the reasons of a million deals
    (built a chunk of deals at a time) were copied whole, 0.4 GiB."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        utc = pa.array(values.dt.tz_convert(None).to_numpy(), from_pandas=True)
        return utc.cast(pa.timestamp(utc.type.unit, "UTC"))
    return pa.array(values, from_pandas=True)


def arrow_table(frame: pd.DataFrame, table: sa.Table) -> pa.Table:
    """The frame as Arrow, each column cast to its SQL column's type: NaN and NaT are null and
    timestamps are UTC microseconds (finer digits dropped, as a datetime would)."""
    columns = []
    for name in frame.columns:
        values = _column(frame[name])
        if name in table.c:
            values = values.cast(_target(table.c[name].type), safe=False)
        if pa.types.is_floating(values.type):  # a NaN that is not yet null
            values = pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)
        columns.append(values)
    return pa.table(columns, names=[str(name) for name in frame.columns])


def sqlite_text_times(table: pa.Table) -> pa.Table:
    """Timestamps as the text SQLAlchemy's DateTime stores on SQLite ("%Y-%m-%d %H:%M:%S.%f",
    UTC), so its reads, and `previous`'s comparisons of text, agree with what is written."""
    columns = []
    for values in table.columns:
        if pa.types.is_timestamp(values.type):
            # Without its zone the cast writes the UTC wall time, six digits, no "Z".
            values = values.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
            values = values.cast(pa.string())
        columns.append(values)
    return pa.table(columns, names=table.column_names)


class StagingFailed(RuntimeError):
    """The staging file could not be written; the message is the driver's first line."""


def stage_sqlite(path: Path, tables: dict[str, pa.Table]) -> None:
    """Each table into a new SQLite file, bound from Arrow in C; the file is a throwaway (no
    journal, no sync). Rowids are 1..n in the rows' order."""
    try:
        with (
            adbc_sqlite.connect(str(path), autocommit=True) as connection,
            connection.cursor() as cursor,
        ):
            for pragma in ("journal_mode = OFF", "synchronous = OFF"):
                cursor.execute(f"PRAGMA {pragma}")
                cursor.fetchall()
            for name, table in tables.items():
                cursor.adbc_ingest(name, sqlite_text_times(table), mode="create")
    except adbc_sqlite.Error as exc:
        lines = str(exc).strip().splitlines()
        raise StagingFailed(lines[0] if lines else exc.__class__.__name__) from exc


def _fixed(values: np.ndarray, kind: str, valid: pa.Array | None) -> pa.Array:
    """Fields of 8 bytes each (big-endian `kind`) with their length; null where not `valid`."""
    fields = np.empty(len(values), dtype=[("length", ">i4"), ("value", kind)])
    fields["length"] = 8
    fields["value"] = values
    out = pa.Array.from_buffers(pa.binary(12), len(values), [None, pa.py_buffer(fields)])
    out = out.cast(pa.large_binary())
    return out if valid is None else pc.if_else(valid, out, NULL_FIELD)


def _field(values: pa.Array) -> pa.Array:
    """One column as COPY binary fields: a 4-byte length (-1 for null), then the bytes."""
    valid = values.is_valid() if values.null_count else None
    if pa.types.is_floating(values.type):
        return _fixed(values.fill_null(0.0).to_numpy(), ">f8", valid)
    if pa.types.is_timestamp(values.type):
        micros = pc.subtract_checked(values.cast(pa.int64()).fill_null(PG_EPOCH_US), PG_EPOCH_US)
        return _fixed(micros.to_numpy(), ">i8", valid)
    text = values.cast(pa.large_binary())
    lengths = pc.binary_length(text).fill_null(-1).to_numpy().astype(">i4")
    prefix = pa.Array.from_buffers(pa.binary(4), len(text), [None, pa.py_buffer(lengths)])
    return pc.binary_join_element_wise(
        prefix.cast(pa.large_binary()), text, NOTHING, null_handling="replace"
    )


def _copy_rows(table: pa.Table) -> pa.Buffer:
    """The table's rows in COPY's binary format: each a field count, then its fields."""
    count = np.full(table.num_rows, table.num_columns, dtype=">i2")
    counts = pa.Array.from_buffers(pa.binary(2), table.num_rows, [None, pa.py_buffer(count)])
    fields = [_field(_plain(values)) for values in table.columns]
    rows = pc.binary_join_element_wise(counts.cast(pa.large_binary()), *fields, NOTHING)
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64, count=len(rows) + 1, offset=0)
    start, end = offsets[rows.offset], offsets[rows.offset + len(rows)]
    return rows.buffers()[2][start:end]


def copy_binary(table: pa.Table, rows: int) -> Iterator[bytes | pa.Buffer]:
    """The table as `COPY ... FROM STDIN (FORMAT BINARY)` reads it: the header, the rows
    `rows` at a time (each piece a few MB), the trailer. Text is UTF-8."""
    yield COPY_HEADER
    for start in range(0, table.num_rows, max(rows, 1)):
        yield _copy_rows(table.slice(start, rows))
    yield COPY_TRAILER
