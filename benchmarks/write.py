"""Score write-back of 1M rows: SQLite, then PostgreSQL, a first write and a rerun of the run.

    .venv/bin/python benchmarks/write.py --rows 1000000

Not measured: building a `Scores` frame of random but realistic rows (its columns read from the
schema: ids, UTC timestamps with some empty, probabilities, bands, reasons in several scripts),
and starting a throwaway PostgreSQL server on loopback in a temporary folder (skipped, with the
reason, when initdb is not installed). Measured: `SqlStore.write` of the run into an empty
store, then the same run again (its rows deleted and written anew), each checked by counting
the rows, with rows per second and peak memory. To time another version of the write path,
run this file with PYTHONPATH pointing at that checkout's src (the dealscore used is printed).
Target: SQLite within a few seconds, PostgreSQL within 10 s, for 1M rows on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from measure import Recorder

import dealscore.io.scores
from dealscore.io.scores import Run, SqlStore
from dealscore.schemas.scores import Band, Rejected, Scores, Trend

AS_OF = pd.Timestamp("2026-11-30", tz="UTC")
FEATURES = ["age_days", "stage", "activities_90d", "amount", "days_in_stage", "contacts"]
REASONS = [
    "open for 40 days",
    "4 activities in the last 90 days",
    "amount 120,000, above the median",
    "stage 'Négociation' (Überprüfung)",
    "見積もり提出済み",
]


def _text(rng: np.random.Generator, choices: list[str], n: int, empty: float = 0.0) -> pd.Series:
    """n values drawn from the choices, a share `empty` of them missing."""
    values = pd.Series(rng.choice(choices, n), dtype="str")
    return values.where(rng.uniform(size=n) >= empty)


def _column(name: str, dtype: str, rng: np.random.Generator, n: int) -> pd.Series | float | str:
    """Random values for one Scores column, by its name and type."""
    if name == "opportunity_id":
        return pd.Series([f"006{i:012d}AAA" for i in range(n)], dtype="str")
    if name in ("model_name", "model_version", "run_id"):
        return {"model_name": "dealscore", "model_version": "7"}.get(name, "f3e1c0a9b8d7")
    if dtype.startswith("datetime64"):
        if name == "as_of":
            return AS_OF
        offset = pd.to_timedelta(rng.integers(0, 3_600_000_000, n), unit="us")
        stamps = pd.Series(AS_OF + offset) if name == "scored_at" else AS_OF - offset * 24 * 7
        return stamps.where(rng.uniform(size=n) >= (0.3 if name == "previous_as_of" else 0))
    if name == "band":
        return _text(rng, [str(b) for b in Band], n)
    if name == "trend":
        return _text(rng, [str(t) for t in Trend], n)
    if name == "change_reason":
        return _text(rng, [f"up: {REASONS[1]}; down: {REASONS[0]}"], n, empty=0.6)
    if name.endswith("_feature"):
        return _text(rng, FEATURES, n, empty=0.1)
    if name.endswith("_reason"):
        return _text(rng, REASONS, n, empty=0.1)
    if name == "horizon_days":
        return 90.0
    if name.endswith("_contribution"):
        values = rng.normal(0, 0.5, n)
    else:
        values = rng.uniform(0, 1, n) * (1e6 if name == "expected_amount" else 1)
    return pd.Series(values).where(rng.uniform(size=n) >= (0.2 if name.startswith("prev") else 0))


def score_rows(n: int, seed: int) -> pd.DataFrame:
    """n valid Scores rows of one run, every column filled as the scorer fills it."""
    rng = np.random.default_rng(seed)
    columns = Scores.to_schema().columns
    frame = pd.DataFrame(
        {name: _column(name, str(column.dtype), rng, n) for name, column in columns.items()},
        index=range(n),
    )
    # The three outcomes sum to 1, as the scorer writes them.
    rest = 1 - frame["win_probability"]
    frame["lost_probability"], frame["no_decision_probability"] = rest * 0.6, rest * 0.4
    return Scores.validate(frame)


def no_rejects() -> pd.DataFrame:
    return Rejected.validate(pd.DataFrame(columns=list(Rejected.to_schema().columns)))


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    return None


@contextmanager
def postgres_server() -> Iterator[str | None]:
    """A throwaway PostgreSQL server on loopback in a temporary folder, its URL; None (with the
    reason printed) where it cannot be started. Run as the `postgres` user under root."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        print("PostgreSQL skipped: initdb and pg_ctl not found (apt-get install postgresql)")
        yield None
        return
    prefix: list[str] = []
    # Under root the server runs as `postgres`, who must reach the folder: not under a TMPDIR
    # private to root (as pytest's are).
    folder = Path(
        tempfile.mkdtemp(prefix="dealscore-bench-pg-", dir="/tmp" if os.geteuid() == 0 else None)
    )
    if os.geteuid() == 0:  # the server refuses to run as root
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env, data = {**os.environ, "LC_ALL": "C"}, str(folder / "data")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    try:
        for command in (
            [initdb, "-D", data, "-U", "dealscore", "-A", "trust", "-E", "UTF8", "--no-locale"],
            [pg_ctl, "-D", data, "-o", options, "-l", str(folder / "log"), "-w", "start"],
        ):
            done = subprocess.run([*prefix, *command], capture_output=True, text=True, env=env)
            if done.returncode != 0:
                print(f"PostgreSQL skipped: {Path(command[0]).name} failed: {done.stderr.strip()}")
                yield None
                return
        yield f"postgresql+psycopg://dealscore@127.0.0.1:{port}/postgres"
    finally:
        stop = [pg_ctl, "-D", data, "-m", "fast", "stop"]
        subprocess.run([*prefix, *stop], capture_output=True, env=env)
        shutil.rmtree(folder, ignore_errors=True)


def measure(recorder: Recorder, label: str, url: str, scores: pd.DataFrame) -> None:
    """A first write of the run, then the rerun that replaces it; the rows counted after each."""
    store = SqlStore(url)
    run = Run(AS_OF, "dealscore", "7")
    for what in ("write", "rerun (replace)"):
        with recorder.step(f"{label} {what}") as step:
            store.write(run, scores, no_rejects())
            step.rows = len(scores)
        with store.engine.connect() as connection:
            count = connection.exec_driver_sql("SELECT count(*) FROM scores").scalar_one()
        assert count == len(scores), (label, what, count)
    store.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-postgresql", action="store_true", help="SQLite only")
    args = parser.parse_args()
    print(f"dealscore from {Path(dealscore.io.scores.__file__).parents[3]}")
    print(f"building {args.rows:,} score rows (not measured)", flush=True)
    scores = score_rows(args.rows, args.seed)
    recorder = Recorder()
    with tempfile.TemporaryDirectory(prefix="dealscore-bench-") as work:
        measure(recorder, "SQLite", f"sqlite:///{Path(work) / 'scores.db'}", scores)
    if not args.no_postgresql:
        with postgres_server() as url:
            if url is not None:
                measure(recorder, "PostgreSQL", url, scores)
    print("target: SQLite within a few seconds, PostgreSQL within 10 s (1M rows)")


if __name__ == "__main__":
    main()
