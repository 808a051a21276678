"""Moving a run's rows into a SQL store in bulk (io/bulk.py): from staging files on SQLite, by
COPY on PostgreSQL, by the driver's executemany elsewhere; each then INSERT ... SELECT."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pyarrow as arrow
import sqlalchemy as sa

from dealscore.io.bulk import StagingFailed, copy_binary, stage_sqlite
from dealscore.io.scores.store import os_cause

STAGE = "dealscore_stage"  # where a write's rows wait for INSERT ... SELECT (io/bulk.py)


PART_ROWS = 200_000  # fewer rows than this are staged in one file


def _parts(tables: dict[str, arrow.Table]) -> list[dict[str, arrow.Table]]:
    """The rows split into as many slices as there are cores (at most 4), in order; a few
    rows stay whole. Each slice holds every table, perhaps empty."""
    most = max((t.num_rows for t in tables.values()), default=0)
    count = max(1, min(os.cpu_count() or 1, 4, most // PART_ROWS))
    size = {name: -(-table.num_rows // count) for name, table in tables.items()}  # rounded up
    return [
        {name: table.slice(k * size[name], size[name]) for name, table in tables.items()}
        for k in range(count)
    ]


@contextmanager
def staging_files(
    tables: dict[str, arrow.Table], fault: Callable[[str, str], Exception]
) -> Iterator[list[tuple[Path, dict[str, int]]]]:
    """Temporary SQLite files holding the rows, one table each, removed after the block: one
    file per slice of the rows, staged side by side (the driver binds rows in C, without the
    GIL), each with its rows per table. A folder or file that cannot be made is
    `fault(folder, cause)`."""
    try:
        folder = tempfile.TemporaryDirectory(prefix="dealscore-stage-")
    except OSError as exc:
        raise fault(tempfile.gettempdir(), os_cause(exc)) from exc
    with folder as name:
        parts = _parts(tables)
        paths = [Path(name) / f"rows{k}.db" for k in range(len(parts))]
        try:
            with ThreadPoolExecutor(len(parts)) as pool:
                list(pool.map(stage_sqlite, paths, parts))
        except StagingFailed as exc:
            cause = "disk full" if "full" in str(exc).lower() else str(exc)
            raise fault(name, cause) from exc
        except OSError as exc:
            raise fault(name, os_cause(exc)) from exc
        yield [
            (path, {table: rows.num_rows for table, rows in part.items()})
            for path, part in zip(paths, parts, strict=True)
        ]


@contextmanager
def attached(
    connection: sa.Connection, staged: list[tuple[Path, dict[str, int]]] | None
) -> Iterator[None]:
    """The staging files as schemas STAGE0, STAGE1, ... of this SQLite connection while the
    block runs; attached outside the transaction, as SQLite can detach them only there."""
    if staged is None:
        yield
        return
    raw = connection.connection.dbapi_connection
    assert raw is not None
    done = 0
    try:
        for k, (path, _) in enumerate(staged):
            raw.execute(f"ATTACH DATABASE ? AS {STAGE}{k}", (str(path),))
            done += 1
    except sqlite3.Error as exc:
        _detach(connection, done)
        raise sa.exc.DBAPIError.instance(
            "ATTACH DATABASE", None, exc, sqlite3.Error, hide_parameters=True
        ) from exc
    try:
        yield
    finally:
        _detach(connection, done)


def _detach(connection: sa.Connection, count: int) -> None:
    """Detach the first `count` staging files; a connection that cannot is not pooled again."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    try:
        for k in range(count):
            raw.execute(f"DETACH DATABASE {STAGE}{k}")
    except sqlite3.Error:
        connection.invalidate()  # not pooled again with a removed file attached


def insert_staged(
    connection: sa.Connection,
    table: sa.Table,
    rows: arrow.Table,
    chunk: int,
    staged: list[tuple[Path, dict[str, int]]],
) -> None:
    """The staged rows into the table, file by file, `chunk` rows a statement, by rowid."""
    names = ", ".join(rows.column_names)
    for k, (_, counts) in enumerate(staged):
        for start in range(0, counts[table.name], chunk):
            connection.exec_driver_sql(
                f"INSERT INTO {table.name} ({names}) SELECT {names} "
                f"FROM {STAGE}{k}.{table.name} WHERE rowid > {start} AND rowid <= {start + chunk}"
            )


def insert_values(
    connection: sa.Connection, table: sa.Table, rows: arrow.Table, chunk: int
) -> None:
    """The rows by the driver's executemany, `chunk` at a time: a Python value each, which
    only drivers without a bulk path here pay. Plain tuples to the driver: SQLAlchemy's
    per-row type processing would triple the time."""
    insert = (
        f"INSERT INTO {table.name} ({', '.join(rows.column_names)}) "
        f"VALUES ({', '.join(['%s'] * rows.num_columns)})"
    )
    for start in range(0, rows.num_rows, chunk):
        part = rows.slice(start, chunk)
        values = [column.to_pylist() for column in part.columns]
        connection.exec_driver_sql(insert, list(zip(*values, strict=True)))


def copy_rows(connection: sa.Connection, table: sa.Table, rows: arrow.Table, chunk: int) -> None:
    """The rows by COPY (binary, built by Arrow) into a temporary table of our column types,
    then INSERT ... SELECT into the table. Binary COPY needs each column's exact type; the
    move casts as an INSERT of values would, for a table an older dealscore or a DBA made."""
    dialect = connection.dialect
    # COPY's binary text is read in the client's encoding; Arrow's is UTF-8.
    connection.exec_driver_sql("SET LOCAL client_encoding = 'UTF8'")
    stage = f"{STAGE}_{table.name}"
    names = ", ".join(rows.column_names)
    kinds = ", ".join(
        f"{name} {table.c[name].type.compile(dialect=dialect)}" for name in rows.column_names
    )
    connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {stage} ({kinds}) ON COMMIT DROP")
    stage = f"pg_temp.{stage}"  # never a table of that name elsewhere on the search path
    statement = f"COPY {stage} ({names}) FROM STDIN (FORMAT BINARY)"
    raw = connection.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for piece in copy_binary(rows, chunk):
                copy.write(piece)
    except dialect.loaded_dbapi.Error as exc:
        # Outside SQLAlchemy: wrapped as it would wrap it, the connection dropped if lost.
        lost = dialect.is_disconnect(exc, raw, None)
        if lost:
            connection.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            statement,
            None,
            exc,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=lost,
            dialect=dialect,
        ) from exc
    connection.exec_driver_sql(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {stage}")
