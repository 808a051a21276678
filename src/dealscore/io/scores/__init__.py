"""Score write-back: SQL (SQLite, PostgreSQL), Parquet or CSV, each run's rows replaced whole.

A run is (as_of, model_name, model_version). Writing a run deletes that run's earlier rows and
inserts the new ones in one transaction, so a rerun replaces its own rows, a crash leaves the
previous state, and other runs (history) are kept. Concurrent writers are serialised: a table
lock on PostgreSQL, an immediate (write-locking) transaction on SQLite, a lock file for folders.
The rows reach a database in bulk, never as a Python object per value (io/bulk.py): by COPY on
PostgreSQL, from a staging file on SQLite, then INSERT ... SELECT inside that one transaction.
"""

from dealscore.io.scores.destination import from_jdbc, open_store, store_exists
from dealscore.io.scores.folder import RUN_FILE, FolderStore
from dealscore.io.scores.sql import SqlStore
from dealscore.io.scores.store import Run, ScoreStore, StoreError, StoreFault

__all__ = [
    "RUN_FILE",
    "FolderStore",
    "Run",
    "ScoreStore",
    "SqlStore",
    "StoreError",
    "StoreFault",
    "from_jdbc",
    "open_store",
    "store_exists",
]
