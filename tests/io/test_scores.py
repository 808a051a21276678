"""Score stores: a rerun replaces its own rows, a crash keeps the previous ones, writers queue."""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

import dealscore.io.scores.sql_rows as sql_rows
from dealscore.io.bulk import StagingFailed
from dealscore.io.scores import (
    RUN_FILE,
    Run,
    SqlStore,
    StoreError,
    StoreFault,
    from_jdbc,
    open_store,
)
from dealscore.schemas.scores import FACTOR_COLUMNS, Rejected, Scores

AS_OF = pd.Timestamp("2026-11-20", tz="UTC")


def scores(n: int, p: float, as_of: pd.Timestamp = AS_OF, version: str = "3", marker: int = 0):
    """n valid score rows with probability p; `marker` seconds tell one writer's rows apart."""
    frame = pd.DataFrame(
        {
            "opportunity_id": [f"OPP{i:06d}" for i in range(n)],
            "as_of": as_of,
            "scored_at": AS_OF + pd.Timedelta(seconds=marker),
            "model_name": "dealscore",
            "model_version": version,
            "run_id": "r1",
            "win_probability": p,
            "lost_probability": (1 - p) * 0.6,
            "no_decision_probability": (1 - p) * 0.4,
            "horizon_days": 90.0,
            "band": "B",
            "expected_amount": 1000.0 * p,
            "previous_probability": np.nan,
            "previous_as_of": pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, UTC]"),
            "trend": "new",
            "change_reason": None,
            **{c: (np.nan if "contribution" in c else None) for c in FACTOR_COLUMNS},
        }
    )
    frame["up_1_feature"], frame["up_1_contribution"], frame["up_1_reason"] = (
        "age_days",
        0.3,
        "open for 10 days",
    )
    return Scores.validate(
        frame.astype(
            {
                "as_of": "datetime64[us, UTC]",
                "scored_at": "datetime64[us, UTC]",
                "previous_as_of": "datetime64[us, UTC]",
            }
        )
    )


def rejected(n: int = 1, as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    return Rejected.validate(
        pd.DataFrame(
            {
                "opportunity_id": [f"BAD{i}" for i in range(n)],
                "as_of": as_of,
                "model_name": "dealscore",
                "model_version": "3",
                "scored_at": AS_OF,
                "rule": "unknown_stage",
                "reason": "stage 'x' is unknown to the model; retrain",
            }
        ).astype({"as_of": "datetime64[us, UTC]", "scored_at": "datetime64[us, UTC]"})
    )


def read_all(store) -> pd.DataFrame:
    if isinstance(store, SqlStore):
        return pd.read_sql_table("scores", store.engine)
    return pd.concat(
        [pd.read_parquet(p) for p in sorted((store.folder / "scores").glob("*.parquet"))],
        ignore_index=True,
    )


@pytest.fixture(params=["sqlite", "parquet"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return open_store(f"sqlite:///{tmp_path / 'scores.db'}")
    return open_store(str(tmp_path / "scores"))


def test_a_rerun_replaces_its_own_rows_and_keeps_history(store):
    run = Run(AS_OF, "dealscore", "3")
    earlier = Run(AS_OF - pd.Timedelta(days=1), "dealscore", "3")
    store.write(earlier, scores(5, 0.2, as_of=earlier.as_of), rejected(0, earlier.as_of))
    store.write(run, scores(5, 0.4), rejected())
    # when the same run is written again
    store.write(run, scores(4, 0.6), rejected())
    # then its rows are the new ones only, and the earlier day's are kept
    rows = read_all(store)
    assert len(rows) == 4 + 5
    today = rows[pd.to_datetime(rows["as_of"], utc=True) == AS_OF]
    assert (today["win_probability"] == 0.6).all()
    # and the previous score of each deal is the earlier day's, with the version that gave it
    previous = store.previous(Run(AS_OF + pd.Timedelta(days=1), "dealscore", "4"))
    assert len(previous) == 5 and (previous["previous_probability"] == 0.6).sum() == 4
    assert set(previous["previous_model_version"]) == {"3"}


def test_a_crash_mid_write_leaves_the_previous_scores(store, monkeypatch):
    run = Run(AS_OF, "dealscore", "3")
    store.write(run, scores(5, 0.4), rejected())

    # given a write that dies after the old rows are deleted and some new ones inserted (SQL),
    # or halfway through the file (folder)
    if isinstance(store, SqlStore):
        real_execute = sa.engine.Connection.exec_driver_sql
        calls = {"n": 0}

        def failing_execute(self, statement, *args, **kwargs):
            calls["n"] += statement.startswith("INSERT INTO scores ")
            if calls["n"] == 2:  # the second chunk of new scores, the old ones already deleted
                raise RuntimeError("power cut")
            return real_execute(self, statement, *args, **kwargs)

        monkeypatch.setattr(store, "chunk", 2)
        monkeypatch.setattr(sa.engine.Connection, "exec_driver_sql", failing_execute)
    else:

        def failing_parquet(self, path, **kwargs):
            Path(path).write_bytes(b"half a file")
            raise RuntimeError("power cut")

        monkeypatch.setattr(pd.DataFrame, "to_parquet", failing_parquet)
    with pytest.raises(RuntimeError, match="power cut"):
        store.write(run, scores(5, 0.9), rejected())
    monkeypatch.undo()
    # then the previous scores are intact
    rows = read_all(store)
    assert len(rows) == 5 and (rows["win_probability"] == 0.4).all()


def _write_concurrently(url_or_folder: str, marker: int) -> None:
    store = open_store(url_or_folder)
    store.write(Run(AS_OF, "dealscore", "3"), scores(3000, 0.1 * marker, marker=marker), rejected())


def _race(target: str, writers: int) -> pd.DataFrame:
    """Writers in their own processes write the same run at once; what the store holds after."""
    open_store(target)  # create the tables before the race
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write_concurrently, args=(target, m)) for m in range(1, writers + 1)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert all(w.exitcode == 0 for w in workers)
    return read_all(open_store(target))


@pytest.mark.parametrize("kind", ["sqlite", "parquet"])
def test_concurrent_runs_do_not_interleave(kind, tmp_path):
    target = f"sqlite:///{tmp_path / 'scores.db'}" if kind == "sqlite" else str(tmp_path / "out")
    rows = _race(target, writers=3)
    # one writer's rows, whole: never a mix, never duplicates
    assert len(rows) == 3000 and rows["scored_at"].nunique() == 1


def test_an_unreachable_database_is_a_clear_error():
    with pytest.raises(StoreError, match="score destination"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")


def test_postgresql_round_trip(postgres):
    store = open_store(postgres)
    run = Run(AS_OF, "dealscore", "3")
    store.write(run, scores(50, 0.3), rejected(2))
    store.write(run, scores(40, 0.5), rejected(1))  # rerun replaces
    rows = read_all(store)
    assert len(rows) == 40 and (rows["win_probability"] == 0.5).all()
    assert pd.read_sql_table("scores_rejected", store.engine).shape[0] == 1
    later = store.previous(Run(AS_OF + pd.Timedelta(days=1), "dealscore", "3"))
    assert len(later) == 40 and later["previous_as_of"].iloc[0] == AS_OF


def test_concurrent_runs_do_not_interleave_on_postgresql(postgres):
    rows = _race(postgres, writers=2)
    assert len(rows) == 3000 and rows["scored_at"].nunique() == 1


@pytest.mark.parametrize(
    ("jdbc", "expected"),
    [
        (
            "jdbc:postgresql://db.example:5432/sales?user=scorer&password=s3cret&sslmode=require",
            "postgresql+psycopg://scorer:s3cret@db.example:5432/sales?sslmode=require",
        ),
        ("jdbc:postgresql://db.example/sales", "postgresql+psycopg://db.example/sales"),
        ("jdbc:sqlite:/var/lib/scores.db", "sqlite:////var/lib/scores.db"),
    ],
)
def test_jdbc_urls_as_spark_users_write_them_are_understood(jdbc, expected):
    assert from_jdbc(jdbc) == expected


def test_a_jdbc_url_of_another_database_is_a_clear_error():
    with pytest.raises(StoreError, match="SQLAlchemy URL"):
        open_store("jdbc:mysql://db.example/sales")


def test_postgresql_through_a_jdbc_url(postgres):
    # given the server's address as a JDBC URL, user in the query string as JDBC puts it
    url = sa.engine.make_url(postgres)
    jdbc = f"jdbc:postgresql://{url.host}:{url.port}/{url.database}?user={url.username}"
    # when a run is written there, then it lands in the same tables
    open_store(jdbc).write(
        Run(AS_OF, "dealscore", "jdbc"), scores(7, 0.2, version="jdbc"), rejected(0)
    )
    written = pd.read_sql_query(
        "select count(*) as n from scores where model_version = 'jdbc'", SqlStore(postgres).engine
    )
    assert written["n"].iloc[0] == 7


def test_a_folder_destination_that_cannot_take_scores_fails_before_any_work(tmp_path):
    # given a destination that is a file, one under a file, and one whose scores/ is a file
    a_file = tmp_path / "scores.txt"
    a_file.write_text("not a folder")
    blocked = tmp_path / "out"
    blocked.mkdir()
    (blocked / "scores").write_text("a file where the scores folder goes")
    # then opening the store says what is wrong, with the path
    with pytest.raises(StoreError, match="is a file, not a folder"):
        open_store(str(a_file))
    with pytest.raises(StoreError, match=r"is under .*scores\.txt, which is a file"):
        open_store(str(a_file / "nightly"))
    with pytest.raises(StoreError, match=r"out/scores is a file"):
        open_store(str(blocked))


def test_an_existing_scores_table_of_another_shape_is_refused_untouched(tmp_path):
    # given a database that already has a "scores" table of its own
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE scores (deal TEXT, score REAL)")
        connection.exec_driver_sql("INSERT INTO scores VALUES ('D1', 0.4)")
    # then the store says so before anything is scored, and the table is as it was
    with pytest.raises(StoreError, match=r"table scores in .* is not dealscore's"):
        open_store(url)
    assert pd.read_sql_table("scores", url).to_dict("list") == {"deal": ["D1"], "score": [0.4]}
    assert sa.inspect(sa.create_engine(url)).get_table_names() == ["scores"]  # nothing added


def test_a_table_written_by_an_earlier_version_gains_the_new_columns_and_keeps_its_rows(tmp_path):
    # given a scores table written before the three outcomes existed
    url = f"sqlite:///{tmp_path / 'scores.db'}"
    old = scores(3, 0.5, as_of=AS_OF - pd.Timedelta(days=1))
    old = old.drop(columns=["lost_probability", "no_decision_probability"])
    engine = sa.create_engine(url)
    store = open_store(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE scores DROP COLUMN lost_probability")
        connection.exec_driver_sql("ALTER TABLE scores DROP COLUMN no_decision_probability")
    old.to_sql("scores", engine, if_exists="append", index=False)
    # when this version opens it and writes a run
    store = open_store(url)
    store.write(Run(AS_OF, "dealscore", "3"), scores(3, 0.2), rejected(0))
    # then the old rows are kept, with the new columns empty, beside the new rows
    rows = read_all(store)
    assert len(rows) == 6
    assert rows["no_decision_probability"].isna().sum() == 3
    assert rows["no_decision_probability"].dropna().tolist() == pytest.approx([0.32] * 3)


def test_score_tables_are_indexed_by_run_and_old_ones_gain_the_index(tmp_path):
    # given score tables an earlier version made, without the by-run index
    url = f"sqlite:///{tmp_path / 'scores.db'}"
    open_store(url).write(Run(AS_OF, "dealscore", "3"), scores(3, 0.5), rejected(1))
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX scores_by_run")
        connection.exec_driver_sql("DROP INDEX scores_rejected_by_run")
    # when this version opens the store
    open_store(url)
    # then each table has its index again, and a rerun's delete finds its rows through it
    inspector = sa.inspect(engine)
    for table in ("scores", "scores_rejected"):
        assert {i["name"] for i in inspector.get_indexes(table)} == {f"{table}_by_run"}
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN DELETE FROM scores WHERE as_of = ? AND model_name = ? "
            "AND model_version = ?",
            ("2026-01-01 00:00:00.000000", "dealscore", "3"),
        ).fetchall()
    assert "scores_by_run" in " ".join(str(row) for row in plan)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "parquet", "csv"])
def test_the_score_history_reads_back_every_run_of_a_model_from_each_store(kind, tmp_path, request):
    # given two nights of one model and one night of another CRM's model, in each kind of store
    target = {
        "sqlite": lambda: f"sqlite:///{tmp_path / 'scores.db'}",
        "postgresql": lambda: request.getfixturevalue("pg_database")("history"),
        "parquet": lambda: str(tmp_path / "scores"),
        "csv": lambda: str(tmp_path / "scores"),
    }[kind]()
    store = open_store(target, "csv" if kind == "csv" else "parquet")
    name = f"history-{kind}"
    before = AS_OF - pd.Timedelta(days=1)
    for as_of, p in ((before, 0.2), (AS_OF, 0.7)):
        store.write(
            Run(as_of, name, "3"),
            scores(4, p, as_of=as_of).assign(model_name=name),
            rejected(0, as_of).assign(model_name=name),
        )
    store.write(Run(AS_OF, "other", "1"), scores(2, 0.5).assign(model_name="other"), rejected(0))
    # when the history of the first model is read
    history = store.history(name)
    # then it holds both nights' rows with what each promised, and nothing of the other model
    assert len(history) == 8 and set(history["model_name"]) == {name}
    night = history.set_index("as_of")["win_probability"]
    assert night.loc[before].tolist() == pytest.approx([0.2] * 4)
    assert night.loc[AS_OF].tolist() == pytest.approx([0.7] * 4)
    assert (history["horizon_days"] == 90.0).all() and set(history["band"]) == {"B"}
    assert len(store.history()) >= 10
    # and from a date on, only the nights since (a nightly check need not read every year kept)
    recent = store.history(name, since=AS_OF - pd.Timedelta(hours=1))
    assert len(recent) == 4 and (recent["as_of"] == AS_OF).all()


def test_a_foreign_or_broken_file_in_the_scores_folder_is_named_or_left_alone(tmp_path):
    # given a folder store with one run, a file of someone else's, and a broken run file
    store = open_store(str(tmp_path / "scores"))
    store.write(Run(AS_OF, "dealscore", "3"), scores(3, 0.4), rejected(0))
    folder = tmp_path / "scores" / "scores"
    pd.DataFrame({"x": [1]}).to_parquet(folder / "notes.parquet")
    # when the history is read, the foreign file is not dealscore's: left alone
    assert len(store.history("dealscore")) == 3
    # and a file named like a run that cannot be read is one clear error naming it
    broken = folder / "20260102T000000_dealscore_v3.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(StoreError, match=r"20260102T000000_dealscore_v3\.parquet.*move it out"):
        store.previous(Run(AS_OF + pd.Timedelta(days=2), "dealscore", "3"))


def assert_one_clean_line(error: StoreError, destination: str, cause: str) -> None:
    """One line naming the destination and the cause, never a row of the scores."""
    message = str(error)
    assert "\n" not in message and error.exit_code == 1
    assert destination in message and cause in message, message
    assert "OPP0" not in message and "INSERT" not in message and "open for" not in message


def test_a_locked_sqlite_store_is_one_line_after_its_timeout(tmp_path):
    # given a store with a short wait (a URL parameter), holding a night's scores
    path = tmp_path / "scores.db"
    store = open_store(f"sqlite:///{path}?timeout=1")
    run = Run(AS_OF, "dealscore", "3")
    store.write(run, scores(5, 0.4), rejected())
    # and another writer holding the write lock
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        # when the run is written again, then it waits its second and stops with one line
        with pytest.raises(StoreFault) as failed:
            store.write(run, scores(5, 0.9), rejected())
        assert_one_clean_line(failed.value, str(path), "database is locked after 1 s")
        # and a writer holding the database exclusively stops the next open the same way
        other.execute("ROLLBACK")
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreFault) as failed:
            open_store(f"sqlite:///{path}?timeout=1")
        assert_one_clean_line(failed.value, str(path), "database is locked after 1 s")
    finally:
        other.close()
    # and the previous scores are intact
    rows = read_all(store)
    assert len(rows) == 5 and (rows["win_probability"] == 0.4).all()


def _fill(folder: Path) -> None:
    """Fill the file system holding `folder` to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def _no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _half_then_no_space(_self_or_table, where, *_args, **_kwargs):
    """What a writer does on a full disk: part of the file, then ENOSPC."""
    if hasattr(where, "write"):  # pandas hands pyarrow an open file
        where.write(b"half a file")
    else:
        Path(where).write_bytes(b"half a file")
    _no_space()


@pytest.mark.parametrize("fault", ["injected", "tmpfs"])
@pytest.mark.parametrize("kind", ["sqlite", "parquet", "csv"])
def test_a_full_disk_is_one_line_and_keeps_the_previous_scores(kind, fault, tmp_path, tmpfs):
    # given a store holding a night's scores, on a disk that then fills up (a tmpfs of its own
    # where one can be mounted; else the lowest write call fails with ENOSPC)
    folder = tmpfs("2m") if fault == "tmpfs" else tmp_path
    target = f"sqlite:///{folder / 'scores.db'}" if kind == "sqlite" else str(folder / "out")
    store = open_store(target, "csv" if kind == "csv" else "parquet")
    run = Run(AS_OF, "dealscore", "3")
    store.write(run, scores(5, 0.4), rejected())
    mp = pytest.MonkeyPatch()
    if fault == "tmpfs":
        _fill(folder)
    elif kind == "sqlite":  # the database may not grow by a page: SQLite's own "disk is full"
        (pages,) = sqlite3.connect(folder / "scores.db").execute("PRAGMA page_count").fetchone()
        sa.event.listen(
            store.engine,
            "connect",
            lambda dbapi, _record: dbapi.execute(f"PRAGMA max_page_count = {pages}"),
        )
        store.engine.dispose()
    elif kind == "parquet":
        mp.setattr(pq, "write_table", _half_then_no_space)
    else:
        mp.setattr(pd.DataFrame, "to_csv", _half_then_no_space)
    # when a rerun of that night writes more rows than the disk takes
    try:
        with pytest.raises(StoreFault) as failed:
            store.write(run, scores(3000, 0.9), rejected())
    finally:
        mp.undo()
    # then one line names the destination and the cause, without a row of data
    assert_one_clean_line(failed.value, str(folder), "disk full")
    # and the previous scores are intact, with no half-written file left behind
    (folder / "filler").unlink(missing_ok=True)
    rows = store.history()
    assert len(rows) == 5 and (rows["win_probability"] == 0.4).all()
    assert not [p.name for p in folder.rglob("*.tmp")]


@pytest.mark.parametrize("how", ["mounted read-only", "opened read-only"])
def test_a_sqlite_store_that_cannot_be_written_is_refused_when_opened(how, tmp_path, tmpfs):
    # given a store holding scores, on a file system remounted read-only (where the test may
    # mount one), or opened read-only through SQLite's own URI option
    folder = tmpfs("1m") if how == "mounted read-only" else tmp_path
    path = folder / "scores.db"
    store = open_store(f"sqlite:///{path}")
    store.write(Run(AS_OF, "dealscore", "3"), scores(5, 0.4), rejected())
    store.engine.dispose()  # no file left open: a busy file system cannot be remounted
    if how == "mounted read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        target, cause = f"sqlite:///{path}", "read-only file system"
    else:
        target, cause = f"sqlite:///file:{path}?mode=ro&uri=true", "read-only"
    # when it is opened, before any scoring, then it says so in one line
    with pytest.raises(StoreFault) as failed:
        open_store(target)
    assert_one_clean_line(failed.value, str(path), cause)


def test_postgresql_stopped_mid_write_is_one_line_and_keeps_the_previous_scores(own_postgres):
    # given a PostgreSQL store holding a night's scores
    store = open_store(own_postgres.url)
    run = Run(AS_OF, "dealscore", "3")
    store.write(run, scores(50, 0.4), rejected())
    # when the server stops while a rerun writes (its old rows already deleted)
    real = sa.engine.Connection.exec_driver_sql

    def stop_at_insert(self, statement, *args, **kwargs):
        if statement.startswith("INSERT INTO scores "):
            own_postgres.stop()
        return real(self, statement, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sa.engine.Connection, "exec_driver_sql", stop_at_insert)
        with pytest.raises(StoreFault) as failed:
            store.write(run, scores(50, 0.9), rejected())
    # then one line names the destination and the cause
    host = sa.engine.make_url(own_postgres.url).host
    assert_one_clean_line(failed.value, f"@{host}", "connection lost")
    # and so does reading the previous scores while it is down
    with pytest.raises(StoreFault) as failed:
        store.previous(run)
    assert_one_clean_line(failed.value, f"@{host}", "connection lost")
    # and once it is back, the previous scores are intact
    own_postgres.start()
    rows = read_all(open_store(own_postgres.url))
    assert len(rows) == 50 and (rows["win_probability"] == 0.4).all()


def _killed_while_writing(folder: str, at: str) -> None:
    """Write a run of 5 scores at 0.9 and 3 rejects, and die by SIGKILL (no cleanup runs) while
    writing the files, or after the rejects are renamed into place and before the scores are."""
    store = open_store(folder)
    if at == "writing the files":

        def half(_frame, path, **_kwargs):
            Path(path).write_bytes(b"half a file")
            os.kill(os.getpid(), signal.SIGKILL)

        pd.DataFrame.to_parquet = half  # type: ignore[method-assign]
    else:
        real = os.replace

        def replace(source, target, *args, **kwargs):
            if Path(target).parent.name == "scores" and RUN_FILE.match(Path(target).name):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(source, target, *args, **kwargs)

        os.replace = replace
    store.write(Run(AS_OF, "dealscore", "3"), scores(5, 0.9), rejected(3))


@pytest.mark.parametrize("at", ["writing the files", "between the renames"])
def test_a_folder_run_killed_mid_write_is_whole_and_leaves_nothing_behind(at, tmp_path):
    # given a folder store holding a night's 5 scores at 0.4 and its 1 reject
    folder = tmp_path / "out"
    run = Run(AS_OF, "dealscore", "3")
    open_store(str(folder)).write(run, scores(5, 0.4), rejected(1))
    # when a rerun of that night (5 scores at 0.9, 3 rejects) is killed -9 mid-write
    worker = multiprocessing.get_context("spawn").Process(
        target=_killed_while_writing, args=(str(folder), at)
    )
    worker.start()
    worker.join(120)
    assert worker.exitcode == -signal.SIGKILL
    # then, once the store is opened again, its readers see one run whole: the old one's
    # scores with the old one's rejects, or the new one's with the new one's
    store = open_store(str(folder))
    history = store.history()
    name = f"{run.slug()}.parquet"
    rejects = pd.read_parquet(folder / "rejected" / name)
    assert len(history) == 5 and history["win_probability"].nunique() == 1
    p = history["win_probability"].iloc[0]
    assert (p, len(rejects)) in {(0.4, 1), (0.9, 3)}, (p, len(rejects))
    assert (
        store.previous(Run(AS_OF + pd.Timedelta(days=1), "dealscore", "3"))[
            "previous_probability"
        ].tolist()
        == [p] * 5
    )
    # and no temporary file of the killed run is left
    assert not [path.name for path in folder.rglob("*") if path.name.endswith(".tmp")]


# The bulk path (io/bulk.py): rows reach the database through Arrow, COPY and a staging file.
AWKWARD_TEXT = [
    "Überprüfung ✓",
    "見積もり",
    'a "quoted", comma',
    "tab\tand\nnewline",
    "back\\slash",
    "",
]


def awkward_scores() -> pd.DataFrame:
    """Six rows of values a bulk path may get wrong: each kind of missing value, an empty string
    beside a missing one, text in several scripts and with CSV's and COPY's special characters,
    microseconds before 1970 and 2000 and in another zone, floats at the ends of their range."""
    frame = scores(6, 0.25)
    frame["opportunity_id"] = [f"OPP-{i}-{text}" for i, text in enumerate(AWKWARD_TEXT)]
    frame["win_probability"] = [0.0, 1.0, 1 / 3, 0.1 + 0.2, 5e-324, 0.999999999999999]
    frame["scored_at"] = pd.to_datetime(
        [
            "2026-11-20 00:00:00.000001+00:00",
            "2026-11-20 23:59:59.999999+00:00",
            "1969-07-20 20:17:40.123456+00:00",
            "1999-12-31 23:59:59.999999+00:00",
            "2026-03-29 02:30:00.5+02:00",  # a zone of its own: stored as the same instant in UTC
            "2000-01-01 00:00:00+00:00",
        ],
        utc=True,
        format="ISO8601",
    ).astype("datetime64[us, UTC]")
    previous = [None, "2026-11-13 08:00:00.25", None, "1970-01-01", None, "2026-11-19 23:59:59.999"]
    frame["previous_as_of"] = pd.to_datetime(previous, utc=True, format="ISO8601").astype(
        "datetime64[us, UTC]"
    )
    frame["previous_probability"] = [np.nan, 0.5, np.nan, 0.125, np.nan, 1e-17]
    frame["expected_amount"] = [
        np.nan,
        0.0,
        1.7976931348623157e308,
        12345.678901234567,
        1e-300,
        7.0,
    ]
    frame["up_1_contribution"] = [-1e300, np.nan, 2.5e-310, -0.1, np.inf, -np.inf]
    frame["change_reason"] = [None, *AWKWARD_TEXT[1:]]
    frame["up_1_reason"] = [*AWKWARD_TEXT[:5], None]
    frame["down_3_reason"] = "x" * 10_000  # longer than any buffer a row might be built in
    return Scores.validate(frame)


def as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows as comparable values, however a database hands them back: times as UTC instants,
    floats as floats, text as str or None; sorted by deal."""
    out = {}
    for name in frame.columns:
        values = frame[name]
        if name in ("as_of", "scored_at", "previous_as_of"):
            out[name] = pd.to_datetime(values, utc=True).astype("datetime64[us, UTC]")
        elif pd.api.types.is_float_dtype(values) or name.endswith(("probability", "contribution")):
            out[name] = values.astype(float)
        else:
            out[name] = values.astype(object).where(values.notna(), None)
    return pd.DataFrame(out).sort_values("opportunity_id").reset_index(drop=True)


@pytest.mark.parametrize("text", ["whole", "in chunks"])
@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "postgresql without COPY"])
def test_awkward_values_read_back_through_sqlalchemy_as_written(kind, text, tmp_path, request):
    # given a store of each kind (without COPY: what a PostgreSQL driver other than psycopg gets),
    # and rows whose text pandas holds whole or in Arrow chunks (rows built a chunk at a time)
    if kind == "sqlite":
        store = open_store(f"sqlite:///{tmp_path / 'scores.db'}")
    else:
        database = ("awkward" if kind == "postgresql" else "awkward_insert") + (
            "_chunks" if text == "in chunks" else ""
        )
        store = open_store(request.getfixturevalue("pg_database")(database))
        store.copy = kind == "postgresql"
    run = Run(AS_OF, "dealscore", "3")
    written, rejects = awkward_scores(), rejected(3).assign(reason=AWKWARD_TEXT[:3])
    if text == "in chunks":
        written = pd.concat([written.iloc[:2], written.iloc[2:]], ignore_index=True)
        assert pa.array(written["up_1_reason"], from_pandas=True).num_chunks == 2
    # when the rows are written, over an earlier write of the same run
    store.write(run, scores(9, 0.5), rejected(1))
    store.write(run, written, rejects)
    # then SQLAlchemy reads back exactly what was written, row for row and value for value
    back = pd.read_sql_table("scores", store.engine)
    pd.testing.assert_frame_equal(as_read(back[written.columns]), as_read(written))
    back_rejects = pd.read_sql_table("scores_rejected", store.engine)
    pd.testing.assert_frame_equal(as_read(back_rejects[rejects.columns]), as_read(rejects))
    # and an empty string stayed a string, apart from a missing value
    reasons = back.set_index("opportunity_id")["change_reason"]
    assert pd.isna(reasons[written["opportunity_id"].iloc[0]])
    assert reasons[written["opportunity_id"].iloc[5]] == ""
    # and the next run's previous scores, and the history, see the same instants and numbers
    later = store.previous(Run(AS_OF + pd.Timedelta(days=1), "dealscore", "3"))
    later = later.set_index("opportunity_id").loc[written["opportunity_id"]]
    assert later["previous_probability"].tolist() == written["win_probability"].tolist()
    assert (later["previous_as_of"] == AS_OF).all()
    history = store.history("dealscore", since=AS_OF)
    assert sorted(history["opportunity_id"]) == sorted(written["opportunity_id"])


def test_the_staging_file_goes_after_a_write_and_after_a_failed_one(tmp_path, monkeypatch):
    # given SQLite's staging files kept under a folder of the test's own
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    store = open_store(f"sqlite:///{tmp_path / 'scores.db'}")
    run = Run(AS_OF, "dealscore", "3")
    # when a run is written, and another fails half-way
    store.write(run, scores(5, 0.4), rejected())
    real = sa.engine.Connection.exec_driver_sql

    def failing(self, statement, *args, **kwargs):
        if statement.startswith("INSERT INTO scores "):
            raise RuntimeError("power cut")
        return real(self, statement, *args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(sa.engine.Connection, "exec_driver_sql", failing)
        with pytest.raises(RuntimeError, match="power cut"):
            store.write(run, scores(5, 0.9), rejected())
    # then no staging file is left behind either way, and the connection is reused cleanly
    assert list((tmp_path / "tmp").iterdir()) == []
    store.write(run, scores(3, 0.7), rejected())
    assert (read_all(store)["win_probability"] == 0.7).tolist() == [True] * 3


def test_rows_staged_in_several_files_side_by_side_are_written_whole(tmp_path, monkeypatch):
    # given a SQLite store holding a night's scores, and slices of at least 3 rows on 3 cores
    monkeypatch.setattr(sql_rows, "PART_ROWS", 3)
    monkeypatch.setattr(sql_rows.os, "cpu_count", lambda: 3)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    store = open_store(f"sqlite:///{tmp_path / 'scores.db'}")
    run = Run(AS_OF, "dealscore", "3")
    store.write(run, scores(10, 0.4), rejected(5))
    staged, fail = [], ["rows1.db"]
    real = sql_rows.stage_sqlite

    def recorded(path, tables):
        if path.name in fail:
            raise StagingFailed("database or disk is full")
        staged.append({name: table.num_rows for name, table in tables.items()})
        return real(path, tables)

    monkeypatch.setattr(sql_rows, "stage_sqlite", recorded)
    # when a rerun fails staging its second slice, then nothing of it is written
    with pytest.raises(StoreFault, match="disk full"):
        store.write(run, scores(11, 0.9), rejected(5))
    assert (read_all(store)["win_probability"] == 0.4).tolist() == [True] * 10
    # and when it is written again, the rows went in three slices of every table
    fail.clear()
    staged.clear()
    store.write(run, scores(11, 0.9), rejected(5))
    assert sorted(staged, key=lambda s: -s["scores"]) == [
        {"scores": 4, "scores_rejected": 2},
        {"scores": 4, "scores_rejected": 2},
        {"scores": 3, "scores_rejected": 1},
    ]
    # and every row of both tables is there once, and no staging file is left
    rows = read_all(store)
    assert sorted(rows["opportunity_id"]) == [f"OPP{i:06d}" for i in range(11)]
    assert (rows["win_probability"] == 0.9).all()
    assert len(pd.read_sql_table("scores_rejected", store.engine)) == 5
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("fault", ["injected", "tmpfs"])
def test_a_staging_folder_that_is_full_is_one_line_and_keeps_the_previous_scores(
    fault, tmp_path, tmpfs, monkeypatch
):
    # given a SQLite store holding a night's scores, and a temporary folder with no room left
    store = open_store(f"sqlite:///{tmp_path / 'scores.db'}")
    run = Run(AS_OF, "dealscore", "3")
    store.write(run, scores(5, 0.4), rejected())
    if fault == "tmpfs":
        folder = tmpfs("1m")
        _fill(folder)
        monkeypatch.setattr(tempfile, "tempdir", str(folder))
    else:

        def full(*_args, **_kwargs):
            raise StagingFailed("database or disk is full")

        monkeypatch.setattr("dealscore.io.scores.sql_rows.stage_sqlite", full)
    # when a rerun is written, then one line says where and why, and nothing changed
    with pytest.raises(StoreFault) as failed:
        store.write(run, scores(3000, 0.9), rejected())
    assert_one_clean_line(failed.value, "staging the rows in", "disk full")
    assert "nothing of this run was written" in str(failed.value)
    rows = read_all(store)
    assert len(rows) == 5 and (rows["win_probability"] == 0.4).all()


def test_postgresql_stopped_mid_copy_is_one_line_and_keeps_the_previous_scores(own_postgres):
    # given a PostgreSQL store holding a night's scores
    store = open_store(own_postgres.url)
    run = Run(AS_OF, "dealscore", "3")
    store.write(run, scores(50, 0.4), rejected())
    # when the server stops while the rerun's rows stream in by COPY (the old ones deleted)
    real = sql_rows.copy_binary

    def stopping(table, rows):
        for number, piece in enumerate(real(table, rows)):
            if number == 2:
                own_postgres.stop()
            yield piece

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sql_rows, "copy_binary", stopping)
        mp.setattr(store, "chunk", 10)
        with pytest.raises(StoreFault) as failed:
            store.write(run, scores(50, 0.9), rejected())
    # then one line names the destination and the cause
    host = sa.engine.make_url(own_postgres.url).host
    assert_one_clean_line(failed.value, f"@{host}", "connection lost")
    # and once it is back, the previous scores are intact and the store writes again
    own_postgres.start()
    rows = read_all(open_store(own_postgres.url))
    assert len(rows) == 50 and (rows["win_probability"] == 0.4).all()
    store.write(run, scores(20, 0.6), rejected())
    assert len(read_all(store)) == 20


def _sql_writer_killed(url: str, tmp: str) -> None:
    """Rewrite the run with 4000 scores at 0.9 and die by SIGKILL in the middle: on SQLite at
    the second INSERT ... SELECT, on PostgreSQL half-way through the COPY."""
    tempfile.tempdir = tmp
    store = open_store(url)
    store.chunk = 1000
    if store.sqlite:
        real = sa.engine.Connection.exec_driver_sql
        seen = {"n": 0}

        def insert(self, statement, *args, **kwargs):
            seen["n"] += statement.startswith("INSERT INTO scores ")
            if seen["n"] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, statement, *args, **kwargs)

        sa.engine.Connection.exec_driver_sql = insert  # type: ignore[method-assign]
    else:
        real_copy = sql_rows.copy_binary

        def copy(table, rows):
            for number, piece in enumerate(real_copy(table, rows)):
                if number == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield piece

        sql_rows.copy_binary = copy  # type: ignore[assignment]
    store.write(Run(AS_OF, "dealscore", "3"), scores(4000, 0.9), rejected(3))


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_sql_writer_killed_mid_write_leaves_the_previous_scores(kind, tmp_path, request):
    target = {
        "sqlite": lambda: f"sqlite:///{tmp_path / 'scores.db'}",
        "postgresql": lambda: request.getfixturevalue("pg_database")("killed"),
    }[kind]()
    # given a store holding a night's 3000 scores at 0.4 and its reject
    run = Run(AS_OF, "dealscore", "3")
    open_store(target).write(run, scores(3000, 0.4), rejected(1))
    # when a rerun of that night is killed -9 mid-write (its old rows already deleted)
    (tmp_path / "tmp").mkdir()
    worker = multiprocessing.get_context("spawn").Process(
        target=_sql_writer_killed, args=(target, str(tmp_path / "tmp"))
    )
    worker.start()
    worker.join(120)
    assert worker.exitcode == -signal.SIGKILL
    # then the store, opened again, holds the previous night whole, and takes the next write
    store = open_store(target)
    rows = read_all(store)
    assert len(rows) == 3000 and (rows["win_probability"] == 0.4).all()
    assert len(pd.read_sql_table("scores_rejected", store.engine)) == 1
    store.write(run, scores(10, 0.7), rejected())
    assert len(read_all(store)) == 10
