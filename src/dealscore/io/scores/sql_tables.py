"""The score tables of a SQL store: their definition, and what opening one finds and mends."""

from __future__ import annotations

import pandera.pandas as pa
import sqlalchemy as sa

from dealscore.io.scores.store import REJECTED_TABLE, SCORES_TABLE, Run, StoreError
from dealscore.schemas.scores import KEY, Rejected, Scores

Widening = list[tuple[sa.Table, list[sa.Column]]]  # columns to add to a table, per table


def columns(model: type[pa.DataFrameModel]) -> list[sa.Column]:
    """The SQL columns of a frame model: times with their zone, floats, and text."""
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


def define_tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """The scores table and the rejected table, each indexed by run."""
    # By run: a rerun deletes its run's rows and `previous` reads a model's earlier runs; the
    # primary key leads with the deal, so without it both scan every night ever written.
    scores = sa.Table(
        SCORES_TABLE,
        metadata,
        *columns(Scores),
        sa.PrimaryKeyConstraint(*KEY),
        sa.Index(f"{SCORES_TABLE}_by_run", "model_name", "as_of"),
    )
    rejected = sa.Table(
        REJECTED_TABLE,
        metadata,
        *columns(Rejected),
        sa.Index(f"{REJECTED_TABLE}_by_run", "model_name", "as_of"),
    )
    return scores, rejected


def inspect_tables(
    engine: sa.Engine, tables: tuple[sa.Table, ...]
) -> tuple[dict[str, set[str]], list[sa.Index]]:
    """The column names of each table already there, and the indexes those tables lack."""
    inspector = sa.inspect(engine)
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
    return existing, unindexed


def widening(tables: tuple[sa.Table, ...], existing: dict[str, set[str]], where: str) -> Widening:
    """The columns to add to tables an earlier dealscore wrote; a table lacking a column that
    cannot be added empty is not dealscore's, and refused."""
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
                f"table {table.name} in {where} is not dealscore's: it lacks "
                f"{len(missing)} column(s), e.g. {missing[:5]}; write elsewhere (--out) or "
                "rename that table"
            )
    return widen


def add_columns(engine: sa.Engine, table: sa.Table, columns: list[sa.Column]) -> None:
    """Add the columns to the table, empty, in one transaction."""
    preparer = engine.dialect.identifier_preparer
    with engine.begin() as connection:
        for column in columns:
            kind = column.type.compile(dialect=engine.dialect)
            connection.exec_driver_sql(
                f"ALTER TABLE {preparer.quote(table.name)} "
                f"ADD COLUMN {preparer.quote(column.name)} {kind}"
            )


def run_filter(table: sa.Table, run: Run) -> sa.ColumnElement[bool]:
    """The rows of the table that belong to the run."""
    return sa.and_(
        table.c.as_of == run.as_of.to_pydatetime(),
        table.c.model_name == run.model_name,
        table.c.model_version == run.model_version,
    )
