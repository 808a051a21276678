"""The Spark session: starting it, its time zone while timestamps cross, progress lines."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pandas as pd

from dealscore.errors import DealscoreError
from dealscore.progress import Progress

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class SparkUnavailableError(DealscoreError, RuntimeError):
    """pyspark (or Java) is missing: `pip install 'dealscore[spark]'` and a JDK 17+."""


def spark_session(master: str = "") -> SparkSession:
    """The active session, or a new one on `master` (default local[*]) set up for dealscore."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailableError(
            "the Spark engine needs pyspark: pip install 'dealscore[spark]' (and Java 17+)"
        ) from exc
    active = SparkSession.getActiveSession()
    if active is not None and not master:
        return active
    builder = (
        SparkSession.builder.appName("dealscore")
        .master(master or "local[*]")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        # Bigger Arrow batches: per-batch overhead of the pandas contract checks dominates at 10k.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "100000")
    )
    if (master or "local").startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        # Local workers must run this interpreter, the one dealscore is installed in; pyspark
        # reads the variable when it starts the context (its spark.pyspark.python conf is not).
        os.environ["PYSPARK_PYTHON"] = sys.executable
    try:
        return builder.getOrCreate()
    except Exception as exc:  # py4j raises plain exceptions when Java is missing or broken
        raise SparkUnavailableError(
            f"cannot start Spark on {master or 'local[*]'}: {str(exc).splitlines()[0]} "
            "(Spark 4 needs Java 17 or 21: JAVA_HOME, or java on the PATH)"
        ) from exc


@contextmanager
def _utc(spark: SparkSession) -> Iterator[None]:
    """Session time zone UTC while we convert timestamps; the caller's setting is restored."""
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset("spark.sql.session.timeZone")
        else:
            spark.conf.set("spark.sql.session.timeZone", before)


@contextmanager
def _reporting(spark: SparkSession, progress: Progress, every: float = 15.0) -> Iterator[None]:
    """While a long Spark job runs, a line every `every` seconds: tasks done of the running
    stages (Spark's own console bar is off: it garbles logs)."""
    try:
        tracker = spark.sparkContext.statusTracker()
    except (AttributeError, NotImplementedError):  # Spark Connect: no tracker, no lines
        yield
        return
    done = threading.Event()

    def report() -> None:
        while not done.wait(every):
            found = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
            stages = [s for s in found if s is not None]
            if stages:
                finished = sum(s.numCompletedTasks for s in stages)
                total = sum(s.numTasks for s in stages)
                progress(f"  spark: {finished:,} of {total:,} tasks done in {len(stages)} stage(s)")

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def default_groups(spark: SparkSession) -> int:
    """Four groups per core Spark offers: small enough to balance, big enough to amortise."""
    try:
        cores = spark.sparkContext.defaultParallelism
    except (AttributeError, NotImplementedError):  # Spark Connect has no SparkContext
        cores = int(spark.conf.get("spark.default.parallelism", "50") or 50)
    return max(4 * cores, 1)


def _collect(frame: DataFrame) -> pd.DataFrame:
    """A Spark frame as pandas, timestamps UTC-aware like the pandas engine reads them."""
    return frame.toArrow().to_pandas()
