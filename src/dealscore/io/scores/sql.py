"""The SQL store (SQLite, PostgreSQL): tables `scores` and `scores_rejected`, a run's rows
replaced in one transaction."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as arrow
import sqlalchemy as sa

from dealscore.io.bulk import arrow_table
from dealscore.io.scores.sql_rows import (
    attached,
    copy_rows,
    insert_staged,
    insert_values,
    staging_files,
)
from dealscore.io.scores.sql_tables import (
    add_columns,
    define_tables,
    inspect_tables,
    run_filter,
    widening,
)
from dealscore.io.scores.store import (
    PREVIOUS,
    SCORES_TABLE,
    Run,
    StoreError,
    StoreFault,
    as_history,
    first_line,
    read_only_file_system,
)
from dealscore.io.secrets import redact
from dealscore.schemas.scores import HISTORY_COLUMNS, RejectedRows, ScoreRows
from dealscore.schemas.tables import TIMESTAMP_DTYPE


def _seconds(url: sa.engine.URL, key: str, default: float) -> float:
    """A number of seconds from the URL's query (?timeout=5), else the default."""
    raw = url.query.get(key)
    if raw is None:
        return default
    try:
        return float(raw if isinstance(raw, str) else raw[-1])
    except ValueError:
        raise StoreError(
            f"score destination {redact(str(url))}: {key}={raw!r} is not a number of seconds"
        ) from None


def _driver_hint(exc: Exception) -> str:
    """What to install when SQLAlchemy lacks the URL's database driver."""
    if isinstance(exc, (ImportError, sa.exc.NoSuchModuleError)):
        return " (is the database driver installed? e.g. pip install 'psycopg[binary]')"
    return ""


def _lock_at_begin(engine: sa.Engine) -> None:
    """pysqlite starts transactions lazily; take the write lock at BEGIN instead, so two
    writers queue rather than interleave (and wait up to the timeout for each other)."""

    @sa.event.listens_for(engine, "connect")
    def _autocommit(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class SqlStore:
    def __init__(self, url: str, chunk: int = 20_000):
        self.url = url
        self.chunk = chunk
        self.engine = self._engine(url)
        self.sqlite = self.engine.dialect.name == "sqlite"
        # Rows go by COPY through psycopg 3 (the documented driver); any other driver of a
        # database other than SQLite gets plain INSERTs.
        self.copy = (
            self.engine.dialect.name == "postgresql" and self.engine.dialect.driver == "psycopg"
        )
        if self.sqlite:
            _lock_at_begin(self.engine)
        metadata = sa.MetaData()
        self.scores, self.rejected = define_tables(metadata)
        self._prepare(metadata)

    def _engine(self, url: str) -> sa.Engine:
        """The URL's engine; sets `timeout`, how long SQLite waits for another writer."""
        try:
            parsed = sa.engine.make_url(url)
            if "@" in (parsed.host or ""):  # a raw "@" in the password
                raise StoreError(
                    f"score destination {redact(url)}: its password holds a raw '@', so the "
                    "host cannot be told from it; percent-encode it (@ -> %40, : -> %3A, "
                    "# -> %23), or leave it out and use PGPASSWORD or ~/.pgpass"
                )
            # How long SQLite waits for another writer: ?timeout=SECONDS in the URL, else 120.
            sqlite = parsed.get_backend_name() == "sqlite"
            self.timeout = _seconds(parsed, "timeout", 120.0) if sqlite else 120.0
            # No error, log line or traceback may show the rows a statement carried.
            return sa.create_engine(url, hide_parameters=True, **self._options(url))
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
            raise StoreError(
                redact(f"cannot use score destination {url}: {exc.__class__.__name__}: {exc}")
                + _driver_hint(exc)
            ) from exc

    def _prepare(self, metadata: sa.MetaData) -> None:
        """Check the tables already there, then create, widen and index what is missing."""
        tables = (self.scores, self.rejected)
        with self._opening("cannot reach score destination"):
            existing, unindexed = inspect_tables(self.engine, tables)
            if self.sqlite:
                self._check_writable()
        # Every existing table is checked before anything is created or altered: a refused
        # destination is left exactly as it was.
        widen = widening(tables, existing, self.describe())
        with self._opening("cannot create the score tables in"):
            metadata.create_all(self.engine)
            for table, added in widen:
                add_columns(self.engine, table, added)
            if unindexed:  # tables an earlier dealscore made; a reader of new ones writes nothing
                with self.engine.begin() as connection:
                    for index in unindexed:
                        index.create(connection)

    @contextmanager
    def _opening(self, doing: str) -> Iterator[None]:
        """Opening the store: a database fault is `_fault`'s one line, any other SQLAlchemy
        error the same line with its message; either way nothing was scored yet."""
        try:
            yield
        except sa.exc.DBAPIError as exc:
            raise self._fault(exc, doing, "nothing was scored", opening=True) from exc
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(redact(f"{doing} {self.describe()}: {exc}")) from exc

    def _check_writable(self) -> None:
        """Ask SQLite for the write lock and give it back at once: a database it cannot write
        (a read-only file system, a file or folder this user cannot write) fails now, before
        any scoring, not at the write. A lock held by another writer means it can be written."""
        with self.engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            (version,) = raw.execute("PRAGMA user_version").fetchone()
            raw.execute("PRAGMA busy_timeout = 0")
            try:
                # BEGIN alone does not find a read-only database; a write (of what is there,
                # rolled back) does.
                raw.execute("BEGIN IMMEDIATE")
                raw.execute(f"PRAGMA user_version = {int(version)}")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise sa.exc.OperationalError("PRAGMA user_version", None, exc) from exc
            finally:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raw.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")

    def _cause(self, exc: sa.exc.DBAPIError) -> tuple[str, str]:
        """(kind, the cause in a few words) of a failed statement, from the driver's own first
        line: never the statement or its rows. kind is locked, full, read-only, connection or
        "" (anything else)."""
        first = first_line(str(exc.orig)) if exc.orig is not None else ""
        low, state = first.lower(), str(getattr(exc.orig, "sqlstate", "") or "")
        if "database is locked" in low or "database table is locked" in low:
            return "locked", (
                f"database is locked after {self.timeout:g} s (another connection holds it; "
                "?timeout=SECONDS in the URL waits longer)"
            )
        if "disk is full" in low or "no space left" in low or state == "53100":
            return "full", "disk full"
        if "readonly database" in low or "read-only" in low or state == "25006":
            folder = Path(str(self.engine.url.database or "").removeprefix("file:")).parent
            if self.sqlite and read_only_file_system(folder):
                return "read-only", "read-only file system"
            return "read-only", "read-only database (can this user write it and its folder?)"
        if "disk i/o error" in low or state == "58030":
            return "full", "disk I/O error"
        if (
            exc.connection_invalidated
            or state.startswith(("08", "57P"))
            or (not self.sqlite and "connection" in low)
        ):
            return "connection", f"connection lost ({first})"
        return "", first or exc.__class__.__name__

    def _fault(
        self, exc: sa.exc.DBAPIError, doing: str, after: str, opening: bool = False
    ) -> StoreError:
        """One line: what failed, where and why, never a row. On opening, a destination that
        is not locked, full or read-only cannot be reached at all (a usage error)."""
        kind, cause = self._cause(exc)
        if opening and kind in ("", "connection"):
            first = first_line(str(exc.orig)) if exc.orig is not None else ""
            return StoreError(redact(f"{doing} {self.describe()}: {first or exc}"))
        if opening:
            doing = "cannot use score destination"
        return StoreFault(redact(f"{doing} {self.describe()}: {cause}; {after}"))

    def _options(self, url: str) -> dict:
        return {"connect_args": {"timeout": self.timeout}} if url.startswith("sqlite") else {}

    def describe(self) -> str:
        # hide_password masks user:password@ only; a password=... query parameter too.
        return redact(self.engine.url.render_as_string(hide_password=True))

    def previous(self, run: Run) -> pd.DataFrame:
        s = self.scores
        ranked = (
            sa.select(
                s.c.opportunity_id,
                s.c.win_probability.label("previous_probability"),
                s.c.as_of.label("previous_as_of"),
                s.c.model_version.label("previous_model_version"),
                sa.func.row_number()
                .over(partition_by=s.c.opportunity_id, order_by=s.c.as_of.desc())
                .label("rank"),
            )
            .where(s.c.model_name == run.model_name, s.c.as_of < run.as_of.to_pydatetime())
            .subquery()
        )
        query = sa.select(*[ranked.c[name] for name in PREVIOUS]).where(ranked.c.rank == 1)
        try:
            with self.engine.connect() as connection:
                frame = pd.DataFrame(connection.execute(query).all(), columns=PREVIOUS)
        except sa.exc.DBAPIError as exc:
            raise self._fault(
                exc, "cannot read the previous scores from", "nothing of this run was written"
            ) from exc
        frame["previous_as_of"] = pd.to_datetime(frame["previous_as_of"], utc=True).astype(
            TIMESTAMP_DTYPE
        )
        frame["previous_probability"] = frame["previous_probability"].astype(float)
        frame["previous_model_version"] = frame["previous_model_version"].astype(str)
        return frame

    def history(
        self, model_name: str | None = None, since: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        s = self.scores
        query = sa.select(*[s.c[name] for name in HISTORY_COLUMNS])
        if model_name is not None:
            query = query.where(s.c.model_name == model_name)
        if since is not None:
            query = query.where(s.c.as_of >= since.to_pydatetime())
        try:
            with self.engine.connect() as connection:
                frame = pd.DataFrame(connection.execute(query).all(), columns=HISTORY_COLUMNS)
        except sa.exc.DBAPIError as exc:
            raise self._fault(exc, "cannot read scores from", "nothing was read") from exc
        return as_history(frame, None)

    def write(self, run: Run, scores: ScoreRows, rejected: RejectedRows) -> None:
        # Converted, and on SQLite staged, before the transaction: the lock covers the move only.
        tables = {
            table.name: arrow_table(frame, table)
            for table, frame in ((self.scores, scores), (self.rejected, rejected))
        }
        # On SQLite the rows wait in temporary files; PostgreSQL stages inside the transaction.
        staging = (
            staging_files(tables, self._staging_fault) if self.sqlite else contextlib.nullcontext()
        )
        committing = False
        try:
            with (
                staging as staged,
                self.engine.connect() as connection,
                attached(connection, staged),
                connection.begin(),
            ):
                self._replace(connection, run, tables, staged)
                committing = True  # the transaction commits as the block ends
        except sa.exc.DBAPIError as exc:
            if committing:
                raise self._fault(
                    exc,
                    "cannot write scores to",
                    "it failed while committing, so this run may or may not be written: run it "
                    "again (a rerun replaces its own rows)",
                ) from exc
            raise self._fault(
                exc,
                "cannot write scores to",
                "nothing of this run was written, the previous scores are as they were",
            ) from exc

    def _staging_fault(self, folder: str, cause: str) -> StoreFault:
        return StoreFault(
            redact(
                f"cannot write scores to {self.describe()}: staging the rows in {folder} failed: "
                f"{cause} (TMPDIR chooses another folder); nothing of this run was written, the "
                "previous scores are as they were"
            )
        )

    def _replace(
        self,
        connection: sa.Connection,
        run: Run,
        tables: dict[str, arrow.Table],
        staged: list[tuple[Path, dict[str, int]]] | None,
    ) -> None:
        if self.engine.dialect.name == "postgresql":
            # Self-conflicting: a second writer waits until this transaction ends.
            connection.exec_driver_sql(f"LOCK TABLE {SCORES_TABLE} IN SHARE ROW EXCLUSIVE MODE")
        for table in (self.scores, self.rejected):
            connection.execute(table.delete().where(run_filter(table, run)))
            rows = tables[table.name]
            if staged is not None:
                insert_staged(connection, table, rows, self.chunk, staged)
            else:
                (copy_rows if self.copy else insert_values)(connection, table, rows, self.chunk)
