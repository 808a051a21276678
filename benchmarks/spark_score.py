"""Both scoring engines on the same 1M open deals, in one run: pandas, then Spark in local mode.

    .venv/bin/python benchmarks/spark_score.py --deals 1000000 [--master local[2]]

Not measured: generating the CRM (the same re-timed export as benchmarks/score.py: every deal
open at one date, 25 activities per deal), writing it to Parquet, and training a small model.
Measured for each engine: `run_score` from the Parquet folder to its own Parquet folder, each
stage's time, and the peak resident memory of this process and its children (Spark's JVM and
its Python workers). Then the two engines' outputs are compared deal by deal. On one 2-core
machine Spark cannot be faster than pandas (same work plus shuffles); what the figures show is
the overhead to expect per core before a cluster's cores pay it back.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from features import EXPORT
from measure import GIB, Recorder
from score import MODEL, prepare

from dealscore.jobs.score import run_score
from dealscore.pipeline.scoring import ScoreSettings


def spark_for_benchmark(master: str, memory: str):
    """A local session with room for a million deals (the default 1g driver heap has none)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(master)
        .appName("dealscore-benchmark")
        .config("spark.driver.memory", memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "100000")
        .getOrCreate()
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--groups", type=int, default=0, help="0: 4 per core")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dealscore-spark-bench-"))
    store = prepare(work, args.deals, args.seed)

    recorder = Recorder(interval=0.1, children=True)
    base = ScoreSettings(model=MODEL, tracking_uri=store, track=False)
    results = {}
    with recorder.step("pandas engine") as step:
        results["pandas"] = run_score(work / "crm", replace(base, out=str(work / "pandas")), EXPORT)
        step.rows = results["pandas"].open_deals
    spark = spark_for_benchmark(args.master, args.driver_memory)
    print(f"Spark {spark.version} on {args.master}, driver memory {args.driver_memory}", flush=True)
    spark_settings = replace(
        base, out=str(work / "spark"), engine="spark", spark_groups=args.groups
    )
    with recorder.step("spark engine") as step:
        results["spark"] = run_score(work / "crm", spark_settings, EXPORT)
        step.rows = results["spark"].open_deals
    spark.stop()

    for engine, result in results.items():
        print(f"{engine}:")
        for stage, seconds in result.seconds.items():
            print(f"  {stage:<28} {seconds:7.1f} s")
    ours = results["pandas"].scores.set_index("opportunity_id").sort_index()
    theirs = results["spark"].scores.set_index("opportunity_id").sort_index()
    same_deals = ours.index.equals(theirs.index)
    gap = (
        np.abs(ours["win_probability"] - theirs["win_probability"]).max() if same_deals else np.nan
    )
    reasons = [c for c in ours if c.endswith("_reason")]
    same_reasons = same_deals and ours[reasons].fillna("").equals(theirs[reasons].fillna(""))
    pandas_step, spark_step = recorder.steps
    print(
        f"agreement: same deals {same_deals}, max probability gap {gap:.2e}, "
        f"same reasons {same_reasons}"
    )
    print(
        f"spark / pandas on {args.master}: {spark_step.seconds / pandas_step.seconds:.2f}x the time "
        f"({spark_step.seconds:.0f} s vs {pandas_step.seconds:.0f} s), peak memory "
        f"{spark_step.rss_peak / GIB:.2f} vs {pandas_step.rss_peak / GIB:.2f} GiB (with children)"
    )


if __name__ == "__main__":
    main()
