"""Opening a score destination from what the user wrote: a SQLAlchemy or JDBC URL, or a folder."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from dealscore.io.scores.folder import FolderStore
from dealscore.io.scores.sql import SqlStore
from dealscore.io.scores.store import ScoreStore, StoreError

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
