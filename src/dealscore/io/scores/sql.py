"""The score stores and opening one; the package's docstring tells how a run is written."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow
import pyarrow.lib as pa_errors
import pyarrow.parquet as pq
import sqlalchemy as sa

from dealscore.errors import DealscoreError
from dealscore.io.bulk import StagingFailed, arrow_table, copy_binary, stage_sqlite
from dealscore.io.secrets import redact
from dealscore.schemas.scores import HISTORY_COLUMNS, KEY, Rejected, ScoreHistory, Scores
from dealscore.schemas.tables import TIMESTAMP_DTYPE

SCORES_TABLE = "scores"
REJECTED_TABLE = "scores_rejected"
PREVIOUS = ["opportunity_id", "previous_probability", "previous_as_of", "previous_model_version"]
STAGE = "dealscore_stage"  # where a write's rows wait for INSERT ... SELECT (io/bulk.py)


class StoreError(DealscoreError, RuntimeError):
    """The destination cannot be reached or written."""


class StoreFault(StoreError):
    """The destination failed while in use (locked, full, read-only, gone): one line naming it
    and the cause, never a row. Exit 1: the command was right, the run did not happen."""

    exit_code = 1


# What a failed file-system call means, by errno (pyarrow's errors carry only the text).
OS_CAUSES = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "input/output error",
}


def _first_line(text: str, limit: int = 200) -> str:
    lines = text.strip().splitlines()
    return lines[0][:limit] if lines else ""


def os_cause(exc: BaseException) -> str:
    """The cause of a failed file-system call in a few words ("disk full")."""
    code = getattr(exc, "errno", None)
    if code in OS_CAUSES:
        return OS_CAUSES[code]
    text = str(exc)
    for number, cause in OS_CAUSES.items():
        if os.strerror(number) in text:
            return cause
    return _first_line(f"{exc.__class__.__name__}: {text}")


def _read_only_file_system(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


@dataclass(frozen=True)
class Run:
    as_of: pd.Timestamp
    model_name: str
    model_version: str

    def slug(self) -> str:
        return f"{self.as_of:%Y%m%dT%H%M%S}_{self.model_name}_v{self.model_version}"


class ScoreStore(Protocol):
    def previous(self, run: Run) -> pd.DataFrame:
        """Each deal's latest score by this model name before the run's as_of."""

    def write(self, run: Run, scores: pd.DataFrame, rejected: pd.DataFrame) -> None:
        """Replace the run's rows with these, atomically."""

    def history(
        self, model_name: str | None = None, since: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        """Every score written (by this model name, as of `since` or later), as `ScoreHistory`
        rows."""

    def describe(self) -> str: ...


def _columns(model: type[pa.DataFrameModel]) -> list[sa.Column]:
    out = []
    for name, column in model.to_schema().columns.items():
        dtype = str(column.dtype)
        kind = (
            sa.DateTime(timezone=True)
            if dtype.startswith("datetime64")
            else sa.Float()
            if dtype.startswith("float")
            else sa.String()
        )
        out.append(sa.Column(name, kind, nullable=column.nullable))
    return out


def _history(
    frame: pd.DataFrame, model_name: str | None, since: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Rows of one model name (all without one) as of `since` or later, in the `ScoreHistory`
    shape; columns an older dealscore did not write come back empty."""
    frame = frame.reindex(columns=HISTORY_COLUMNS)
    frame = frame.assign(as_of=pd.to_datetime(frame["as_of"], utc=True))
    keep = pd.Series(True, index=frame.index)
    if model_name is not None:
        keep &= frame["model_name"] == model_name
    if since is not None:
        keep &= frame["as_of"] >= since
    return ScoreHistory.validate(frame[keep].reset_index(drop=True))


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


class SqlStore:
    def __init__(self, url: str, chunk: int = 20_000):
        self.url = url
        self.chunk = chunk
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
            self.engine = sa.create_engine(url, hide_parameters=True, **self._options(url))
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
            raise StoreError(
                redact(f"cannot use score destination {url}: {exc.__class__.__name__}: {exc}")
                + _driver_hint(exc)
            ) from exc
        self.sqlite = self.engine.dialect.name == "sqlite"
        # Rows go by COPY through psycopg 3 (the documented driver); any other driver of a
        # database other than SQLite gets plain INSERTs.
        self.copy = (
            self.engine.dialect.name == "postgresql" and self.engine.dialect.driver == "psycopg"
        )
        if self.sqlite:
            # pysqlite starts transactions lazily; take the write lock at BEGIN instead, so two
            # writers queue rather than interleave (and wait up to the timeout for each other).
            @sa.event.listens_for(self.engine, "connect")
            def _autocommit(dbapi_connection, _record) -> None:
                dbapi_connection.isolation_level = None

            @sa.event.listens_for(self.engine, "begin")
            def _immediate(connection) -> None:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        metadata = sa.MetaData()
        # By run: a rerun deletes its run's rows and `previous` reads a model's earlier runs; the
        # primary key leads with the deal, so without it both scan every night ever written.
        self.scores = sa.Table(
            SCORES_TABLE,
            metadata,
            *_columns(Scores),
            sa.PrimaryKeyConstraint(*KEY),
            sa.Index(f"{SCORES_TABLE}_by_run", "model_name", "as_of"),
        )
        self.rejected = sa.Table(
            REJECTED_TABLE,
            metadata,
            *_columns(Rejected),
            sa.Index(f"{REJECTED_TABLE}_by_run", "model_name", "as_of"),
        )
        tables = (self.scores, self.rejected)
        with self._opening("cannot reach score destination"):
            inspector = sa.inspect(self.engine)
            existing = {
                table.name: {c["name"] for c in inspector.get_columns(table.name)}
                for table in tables
                if inspector.has_table(table.name)
            }
            unindexed = [
                index
                for table in tables
                if table.name in existing
                for index in table.indexes
                if index.name not in {i["name"] for i in inspector.get_indexes(table.name)}
            ]
            if self.sqlite:
                self._check_writable()
        # Every existing table is checked before anything is created or altered: a refused
        # destination is left exactly as it was.
        widen = []
        for table in tables:
            if table.name not in existing:
                continue
            missing = sorted({c.name for c in table.columns} - existing[table.name])
            added = [table.c[name] for name in missing if table.c[name].nullable]
            if added and set(KEY) <= existing[table.name]:
                # A table written by an earlier dealscore: its rows stay, new columns are empty.
                widen.append((table, added))
                missing = [name for name in missing if not table.c[name].nullable]
            if missing:
                raise StoreError(
                    f"table {table.name} in {self.describe()} is not dealscore's: it lacks "
                    f"{len(missing)} column(s), e.g. {missing[:5]}; write elsewhere (--out) or "
                    "rename that table"
                )
        with self._opening("cannot create the score tables in"):
            metadata.create_all(self.engine)
            for table, added in widen:
                self._add_columns(table, added)
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
        first = _first_line(str(exc.orig)) if exc.orig is not None else ""
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
            if self.sqlite and _read_only_file_system(folder):
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
            first = _first_line(str(exc.orig)) if exc.orig is not None else ""
            return StoreError(redact(f"{doing} {self.describe()}: {first or exc}"))
        if opening:
            doing = "cannot use score destination"
        return StoreFault(redact(f"{doing} {self.describe()}: {cause}; {after}"))

    def _add_columns(self, table: sa.Table, columns: list[sa.Column]) -> None:
        preparer = self.engine.dialect.identifier_preparer
        with self.engine.begin() as connection:
            for column in columns:
                kind = column.type.compile(dialect=self.engine.dialect)
                connection.exec_driver_sql(
                    f"ALTER TABLE {preparer.quote(table.name)} "
                    f"ADD COLUMN {preparer.quote(column.name)} {kind}"
                )

    def _options(self, url: str) -> dict:
        return {"connect_args": {"timeout": self.timeout}} if url.startswith("sqlite") else {}

    def describe(self) -> str:
        # hide_password masks user:password@ only; a password=... query parameter too.
        return redact(self.engine.url.render_as_string(hide_password=True))

    def _run_filter(self, table: sa.Table, run: Run):
        return sa.and_(
            table.c.as_of == run.as_of.to_pydatetime(),
            table.c.model_name == run.model_name,
            table.c.model_version == run.model_version,
        )

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
        return _history(frame, None)

    def write(self, run: Run, scores: pd.DataFrame, rejected: pd.DataFrame) -> None:
        # Converted, and on SQLite staged, before the transaction: the lock covers the move only.
        tables = {
            table.name: arrow_table(frame, table)
            for table, frame in ((self.scores, scores), (self.rejected, rejected))
        }
        committing = False
        try:
            with (
                self._staged(tables) as staged,
                self.engine.connect() as connection,
                self._attached(connection, staged),
                connection.begin(),
            ):
                self._replace(connection, run, tables)
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

    @contextmanager
    def _staged(self, tables: dict[str, arrow.Table]) -> Iterator[Path | None]:
        """On SQLite, a temporary file holding the rows, one table each, removed after the
        write; elsewhere None (PostgreSQL stages inside the transaction)."""
        if not self.sqlite:
            yield None
            return
        try:
            folder = tempfile.TemporaryDirectory(prefix="dealscore-stage-")
        except OSError as exc:
            raise self._staging_fault(tempfile.gettempdir(), os_cause(exc)) from exc
        with folder as name:
            path = Path(name) / "rows.db"
            try:
                stage_sqlite(path, tables)
            except StagingFailed as exc:
                cause = "disk full" if "full" in str(exc).lower() else str(exc)
                raise self._staging_fault(name, cause) from exc
            except OSError as exc:
                raise self._staging_fault(name, os_cause(exc)) from exc
            yield path

    def _staging_fault(self, folder: str, cause: str) -> StoreFault:
        return StoreFault(
            redact(
                f"cannot write scores to {self.describe()}: staging the rows in {folder} failed: "
                f"{cause} (TMPDIR chooses another folder); nothing of this run was written, the "
                "previous scores are as they were"
            )
        )

    @contextmanager
    def _attached(self, connection: sa.Connection, staged: Path | None) -> Iterator[None]:
        """The staging file as schema STAGE of this SQLite connection while the block runs;
        attached outside the transaction, as SQLite can detach it only there."""
        if staged is None:
            yield
            return
        raw = connection.connection.dbapi_connection
        assert raw is not None
        try:
            raw.execute(f"ATTACH DATABASE ? AS {STAGE}", (str(staged),))
        except sqlite3.Error as exc:
            raise sa.exc.DBAPIError.instance(
                "ATTACH DATABASE", None, exc, sqlite3.Error, hide_parameters=True
            ) from exc
        try:
            yield
        finally:
            try:
                raw.execute(f"DETACH DATABASE {STAGE}")
            except sqlite3.Error:
                connection.invalidate()  # not pooled again with a removed file attached

    def _replace(self, connection: sa.Connection, run: Run, tables: dict[str, arrow.Table]) -> None:
        if self.engine.dialect.name == "postgresql":
            # Self-conflicting: a second writer waits until this transaction ends.
            connection.exec_driver_sql(f"LOCK TABLE {SCORES_TABLE} IN SHARE ROW EXCLUSIVE MODE")
        for table in (self.scores, self.rejected):
            connection.execute(table.delete().where(self._run_filter(table, run)))
            if self.sqlite:
                self._insert_staged(connection, table, tables[table.name])
            elif self.copy:
                self._copy(connection, table, tables[table.name])
            else:
                self._insert(connection, table, tables[table.name])

    def _insert_staged(self, connection: sa.Connection, table: sa.Table, rows: arrow.Table) -> None:
        """The staged rows into the table, `chunk` rows a statement, by their rowids."""
        names = ", ".join(rows.column_names)
        for start in range(0, rows.num_rows, self.chunk):
            connection.exec_driver_sql(
                f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {STAGE}.{table.name} "
                f"WHERE rowid > {start} AND rowid <= {start + self.chunk}"
            )

    def _insert(self, connection: sa.Connection, table: sa.Table, rows: arrow.Table) -> None:
        """The rows by the driver's executemany, `chunk` at a time: a Python value each, which
        only drivers without a bulk path here pay. Plain tuples to the driver: SQLAlchemy's
        per-row type processing would triple the time."""
        insert = (
            f"INSERT INTO {table.name} ({', '.join(rows.column_names)}) "
            f"VALUES ({', '.join(['%s'] * rows.num_columns)})"
        )
        for start in range(0, rows.num_rows, self.chunk):
            part = rows.slice(start, self.chunk)
            values = [column.to_pylist() for column in part.columns]
            connection.exec_driver_sql(insert, list(zip(*values, strict=True)))

    def _copy(self, connection: sa.Connection, table: sa.Table, rows: arrow.Table) -> None:
        """The rows by COPY (binary, built by Arrow) into a temporary table of our column types,
        then INSERT ... SELECT into the table. Binary COPY needs each column's exact type; the
        move casts as an INSERT of values would, for a table an older dealscore or a DBA made."""
        dialect = self.engine.dialect
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
                for piece in copy_binary(rows, self.chunk):
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
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {stage}"
        )


def _slug_before(name: str, since: pd.Timestamp) -> bool:
    """Whether a run file's name (`Run.slug`) says its as_of is before `since`; False when the
    name says nothing (the rows are filtered after reading then)."""
    stamp = pd.to_datetime(name[:15], format="%Y%m%dT%H%M%S", errors="coerce", utc=True)
    return bool(pd.notna(stamp) and stamp < since.floor("s"))


RUN_FILE = re.compile(r"^\d{8}T\d{6}_.+_v[^_/]+\.(parquet|csv)$")  # Run.slug + suffix


JOURNAL = ".dealscore-commit.json"  # the run whose staged files are committed (FolderStore)
STAGED = re.compile(r"^\.(?P<name>.+)\.(?P<token>[0-9a-f]{32})\.tmp$")  # .<name>.<token>.tmp


def _sync(path: Path) -> None:
    """Flush a file's or a folder's entries to the disk (a folder: its renames)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class FolderStore:
    """`DIR/scores/<run>.parquet` and `DIR/rejected/<run>.parquet` (or .csv), one pair per run.

    A run's pair is committed in two phases, so a crash can never leave one run's rejects
    beside another run's scores: both files are written under temporary names, then a journal
    naming them (`DIR/.dealscore-commit.json`) is put in place, the commit point, then both are
    renamed over the old pair and the journal removed. Whoever takes the folder's lock next (a
    writer, a reader, opening the store) finishes a committed run's renames and deletes the
    files of a run that died before its commit. Readers hold the lock: they see the old pair
    or the new one, whole."""

    def __init__(self, folder: Path, fmt: str = "parquet"):
        if fmt not in ("parquet", "csv"):
            raise StoreError(f"score files must be parquet or csv, got {fmt!r}")
        self.folder, self.fmt = Path(folder), fmt
        self._check_writable()
        if self.folder.is_dir():  # what a crashed run left, now, unless a writer is at work
            try:
                with self._locked(wait=False) as locked:
                    if locked:
                        self._recover()
            except OSError as exc:
                raise StoreFault(
                    f"cannot use score destination {self.describe()}: {os_cause(exc)}; "
                    "nothing was scored"
                ) from exc

    def _check_writable(self) -> None:
        """Fail now, before any scoring, if the folder cannot take the scores."""
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"score destination {folder} is a file, not a folder")
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise StoreError(f"score destination {folder} is under {existing}, which is a file")
        if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
            raise StoreError(f"score destination {folder}: {existing} is not writable")
        for sub in ("scores", "rejected"):
            if (folder / sub).exists() and not (folder / sub).is_dir():
                raise StoreError(f"score destination {folder / sub} is a file, not a folder")

    def describe(self) -> str:
        return f"{self.folder}/scores/*.{self.fmt}"

    @contextmanager
    def _locked(self, wait: bool = True) -> Iterator[bool]:
        """The folder's lock, held by one writer or reader at a time; without `wait`, yields
        False at once when someone holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".dealscore.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _committed(self) -> tuple[str, str] | None:
        """(run file name, token) of the committed run in the journal; None when there is
        none. A journal naming anything but a run file of this folder is not ours: ignored."""
        try:
            entry = json.loads((self.folder / JOURNAL).read_text())
            name, token = entry["name"], entry["token"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # written whole or not at all (renamed into place): not our journal
        if not (isinstance(name, str) and isinstance(token, str)):
            return None
        if not RUN_FILE.match(name) or not re.fullmatch(r"[0-9a-f]{32}", token):
            return None
        return name, token

    def _recover(self) -> None:
        """With the lock held: finish a committed run's renames (roll forward), then delete
        the temporary files of runs that died before their commit."""
        committed = self._committed()
        if committed is not None:
            name, token = committed
            for sub in ("rejected", "scores"):
                staged = self.folder / sub / f".{name}.{token}.tmp"
                if staged.exists():
                    os.replace(staged, self.folder / sub / name)
                    _sync(staged.parent)
        (self.folder / JOURNAL).unlink(missing_ok=True)
        for place in (self.folder, self.folder / "scores", self.folder / "rejected"):
            if not place.is_dir():
                continue
            for path in place.glob(".*.tmp"):
                match = STAGED.match(path.name)
                if match and (RUN_FILE.match(match["name"]) or match["name"] == JOURNAL):
                    path.unlink(missing_ok=True)

    def previous(self, run: Run) -> pd.DataFrame:
        history = self.history(run.model_name)
        history = history[history["as_of"] < run.as_of].astype({"as_of": TIMESTAMP_DTYPE})
        latest = history.sort_values("as_of").drop_duplicates("opportunity_id", keep="last")
        return latest.rename(
            columns={
                "win_probability": "previous_probability",
                "as_of": "previous_as_of",
                "model_version": "previous_model_version",
            }
        )[PREVIOUS].reset_index(drop=True)

    def _read(self, path: Path) -> pd.DataFrame:
        """One run's file, only the history's columns (those it has); a file dealscore cannot
        read there is a StoreError naming it."""
        wanted = set(HISTORY_COLUMNS)
        text = {"opportunity_id": str, "model_name": str, "model_version": str, "band": str}
        try:
            if self.fmt == "parquet":
                names = pq.read_schema(path).names
                return pd.read_parquet(path, columns=[c for c in names if c in wanted])
            return pd.read_csv(path, usecols=lambda c: c in wanted, dtype=text)
        except (OSError, ValueError, pa_errors.ArrowException) as exc:
            raise StoreError(
                f"{path} is named like a run's scores but cannot be read "
                f"({exc.__class__.__name__}: {str(exc)[:200]}); move it out of {path.parent}"
            ) from exc

    def _runs(self) -> list[Path]:
        """The score files of runs: named `<as_of>_<model>_v<version>` (`Run.slug`); any other
        file in the folder is not dealscore's and is left alone."""
        paths = sorted((self.folder / "scores").glob(f"*.{self.fmt}"))
        return [p for p in paths if RUN_FILE.match(p.name)]

    def history(
        self, model_name: str | None = None, since: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        frames = []
        if (self.folder / "scores").is_dir():
            with self._locked():  # no run is half-committed while its files are read
                self._recover()
                paths = self._runs()
                if since is not None:  # a run's file is named after its as_of: skip older ones
                    paths = [p for p in paths if not _slug_before(p.name, since)]
                frames = [self._read(path) for path in paths]
        if not frames:
            return _history(pd.DataFrame(columns=HISTORY_COLUMNS), model_name)
        return _history(pd.concat(frames, ignore_index=True), model_name, since)

    def _stage(self, frame: pd.DataFrame, path: Path) -> None:
        """A frame written under its temporary name, on the disk before the commit."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        _sync(path)

    def write(self, run: Run, scores: pd.DataFrame, rejected: pd.DataFrame) -> None:
        name, token = f"{run.slug()}.{self.fmt}", uuid.uuid4().hex
        staged = {sub: self.folder / sub / f".{name}.{token}.tmp" for sub in ("rejected", "scores")}
        journal = self.folder / f".{JOURNAL}.{token}.tmp"
        committed = False
        try:
            with self._locked():
                self._recover()
                try:
                    self._stage(rejected, staged["rejected"])
                    self._stage(scores, staged["scores"])
                    journal.write_text(json.dumps({"name": name, "token": token}))
                    _sync(journal)
                    os.replace(journal, self.folder / JOURNAL)  # the commit point
                    committed = True
                    _sync(self.folder)
                except BaseException:
                    if not committed:
                        for path in (*staged.values(), journal):
                            path.unlink(missing_ok=True)
                    raise
                self._recover()  # both renames, then the journal goes
        except (OSError, pa_errors.ArrowException) as exc:
            if committed:
                raise StoreFault(
                    f"cannot finish writing scores to {self.describe()}: {os_cause(exc)}; the "
                    "run is committed and its files are put in place when the store is next "
                    "opened"
                ) from exc
            raise StoreFault(
                f"cannot write scores to {self.describe()}: {os_cause(exc)}; nothing of this "
                "run was written, the previous scores are as they were"
            ) from exc


JDBC_DRIVERS = {"postgresql": "postgresql+psycopg", "sqlite": "sqlite"}


def from_jdbc(url: str) -> str:
    """The SQLAlchemy URL of a JDBC one, as Spark users write them:
    jdbc:postgresql://host:5432/db?user=u&password=p -> postgresql+psycopg://u:p@host:5432/db,
    jdbc:sqlite:/path/scores.db -> sqlite:////path/scores.db."""
    kind, _, rest = url.removeprefix("jdbc:").partition(":")
    if kind not in JDBC_DRIVERS:
        raise StoreError(
            f"{url}: JDBC URLs for {sorted(JDBC_DRIVERS)} are understood; "
            "for other databases give a SQLAlchemy URL"
        )
    if kind == "sqlite":
        return f"sqlite:///{rest.removeprefix('//')}"
    parsed = sa.engine.make_url(f"{JDBC_DRIVERS[kind]}:{rest}")
    query = dict(parsed.query)
    return parsed.set(
        username=str(query.pop("user", parsed.username) or "") or None,
        password=str(query.pop("password", parsed.password) or "") or None,
        query=query,
    ).render_as_string(hide_password=False)


def store_exists(out: str) -> bool:
    """Whether scores may have been written there, found without creating anything: a SQLite
    file or a folder's scores must exist; any other database is asked when opened."""
    if out.startswith("jdbc:"):
        out = from_jdbc(out)
    if "://" not in out:
        return (Path(out) / "scores").is_dir()
    try:
        url = sa.engine.make_url(out)
    except sa.exc.ArgumentError:
        return True  # opening it says what is wrong
    if url.get_backend_name() == "sqlite":
        database = url.database or ""  # none: in memory, nothing kept
        return bool(database) and Path(database).exists()
    return True


def open_store(out: str, fmt: str = "parquet") -> ScoreStore:
    """A SQLAlchemy URL ("sqlite:///scores.db", "postgresql+psycopg://..."), a JDBC URL of
    PostgreSQL or SQLite, or a folder."""
    if out.startswith("jdbc:"):
        return SqlStore(from_jdbc(out))
    if "://" in out:
        return SqlStore(out)
    return FolderStore(Path(out), fmt)
