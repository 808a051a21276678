"""Nightly scoring end to end on 1M open deals: read, features, score with reasons, write SQLite.

    .venv/bin/python benchmarks/score.py --deals 1000000

Not measured: generating the CRM (re-timed so every deal is open at one date, as in
benchmarks/features.py) and writing it to Parquet, and training a small model into a temporary
MLflow store. Measured: `run_score` from the Parquet folder to a SQLite file, each run in a
process of its own as the nightly job runs (so the generator's and trainer's leftovers in this
one are not counted), each stage's time and rows per second, and that process's peak memory
(imports included). Then, on the same rows, the throughput of
scoring with reasons (leaf credits) against plain prediction; and a floor measured in the same
run: reading only the columns the features use with pyarrow, and LightGBM's prediction (400
trees of 31 leaves) on as many rows of 40 features, so the end-to-end time is also said as a
ratio to what the hardware needs. `--runs` end-to-end runs (default 3), each a first write to
a new SQLite file; their median counts. Target: 30 s and 3 GiB (stretch: 15 s, 2 GiB).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

from features import EXPORT, all_open_at
from measure import GIB, Recorder

from dealscore.explain.factors import explain
from dealscore.features import build_features
from dealscore.io import write_tables
from dealscore.jobs.score import run_score
from dealscore.jobs.train import run_train
from dealscore.pipeline.scoring import ScoreSettings
from dealscore.pipeline.training import TrainSettings
from dealscore.synthetic import GeneratorSettings, generate_crm
from dealscore.tracking.models import load_model

MODEL_NAME = "dealscore-benchmark"
MODEL = f"models:/{MODEL_NAME}@champion"


def prepare(work: Path, deals: int, seed: int, history_deals: int = 20_000) -> str:
    """Not measured: a champion trained on `history_deals` generated deals (its MLflow store is returned),
    and `work/crm`, `deals` generated deals re-timed to be open at EXPORT, as Parquet."""
    store = f"sqlite:///{work / 'mlflow.db'}"
    print(f"training a model on {history_deals:,} generated deals (not measured)", flush=True)
    history = generate_crm(GeneratorSettings(deals=history_deals, seed=1, export_date=EXPORT))
    write_tables(history.tables, work / "history")
    (work / "history" / "truth.parquet").unlink(missing_ok=True)
    # One fixed name: the model is trained on one folder and scores another.
    run_train(
        work / "history", TrainSettings(tracking_uri=store, icp="", registered_model=MODEL_NAME)
    )

    print(f"generating {deals:,} open deals (not measured)", flush=True)
    crm = generate_crm(
        GeneratorSettings(deals=deals, seed=seed, export_date=EXPORT, activities_per_deal=25)
    )
    open_tables = all_open_at(crm.tables, EXPORT, seed, forecasts=True)
    del crm
    write_tables(open_tables, work / "crm")
    print(
        f"{len(open_tables.opportunities):,} open deals, {len(open_tables.activities):,} activities, "
        f"{len(open_tables.stage_history):,} stage rows, {len(open_tables.forecasts):,} forecasts",
        flush=True,
    )
    del open_tables
    gc.collect()
    return store


# What the feature code reads of each table: the floor reads these columns and no others.
NEEDED = {
    "opportunities": None,  # every column: the deal's own attributes are features
    "activities": [
        "opportunity_id",
        "occurred_at",
        "created_at",
        "type",
        "direction",
        "contact_id",
    ],
    "stage_history": None,
    "forecasts": None,
    "accounts": None,
    "contacts": None,
    "owners": None,
}


def floor_seconds(crm: Path, rows: int) -> tuple[float, float]:
    """(read, predict): the needed columns read with pyarrow, and LightGBM predicting `rows`
    rows of 40 features with 400 trees of 31 leaves (trained here on random rows)."""
    started = time.perf_counter()
    for name, columns in NEEDED.items():
        path = crm / f"{name}.parquet"
        if path.exists():
            pq.read_table(path, columns=columns)
    read = time.perf_counter() - started
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 40))
    y = (X[:, 0] + rng.normal(size=len(X)) > 0).astype(int)
    params = {"num_leaves": 31, "min_data_in_leaf": 5, "verbose": -1, "num_threads": 2}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=400)
    X = rng.normal(size=(rows, 40))
    started = time.perf_counter()
    booster.predict(X)
    return read, time.perf_counter() - started


RESULT = "result: "  # the line a run's process ends with: its seconds and peak RSS


def score_once(work: Path, store: str) -> None:
    """One end-to-end run, in this process: each stage's time, then RESULT and a JSON object."""
    recorder = Recorder(interval=0.05)
    settings = ScoreSettings(
        model=MODEL, out=f"sqlite:///{work / 'scores.db'}", tracking_uri=store, track=False
    )
    with recorder.step("score end to end") as step:
        result = run_score(work / "crm", settings, as_of=EXPORT)
        step.rows = result.open_deals
    for stage, seconds in result.seconds.items():
        print(f"  {stage:<28} {seconds:7.1f} s {result.open_deals / seconds:>12,.0f} rows/s")
    print(
        f"scored {len(result.scores):,}, rejected {len(result.rejected):,}; written to "
        f"{result.destination}"
    )
    print(RESULT + json.dumps({"seconds": step.seconds, "peak": step.rss_peak}), flush=True)


def score_runs(work: Path, store: str, runs: int) -> list[dict[str, float]]:
    """`runs` end-to-end runs, each a first write to a new SQLite file in a fresh process."""
    measured = []
    for run in range(1, runs + 1):
        (work / "scores.db").unlink(missing_ok=True)  # each run a first write, as nightly
        print(f"run {run}:", flush=True)
        # Its stderr (logs, a traceback) goes straight to ours; its stdout is read for RESULT.
        child = subprocess.run(
            [sys.executable, __file__, "--one", str(work), "--store", store],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        lines = child.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith(RESULT)), flush=True)
        measured.append(json.loads(next(x for x in lines if x.startswith(RESULT))[len(RESULT) :]))
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--history", type=int, default=20_000, help="generated deals the model is trained on"
    )
    parser.add_argument("--runs", type=int, default=3, help="end-to-end runs; the median counts")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # a run's own process
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        score_once(args.one, args.store)
        return
    work = Path(tempfile.mkdtemp(prefix="dealscore-bench-"))

    store = prepare(work, args.deals, args.seed, args.history)
    runs = score_runs(work, store, args.runs)
    seconds = [run["seconds"] for run in runs]
    median = statistics.median(seconds)
    peak = max(run["peak"] for run in runs)

    # Reasons vs plain prediction on the same rows: the model's own test features, repeated.
    loaded = load_model(MODEL, store)
    from dealscore.io import read_export

    tables = read_export(work / "history").tables
    X = build_features(tables, EXPORT - pd.Timedelta(days=30), loaded.bundle.feature_state)
    X = pd.concat(
        [X[loaded.bundle.feature_names]] * max(1, 500_000 // max(len(X), 1)), ignore_index=True
    )
    started = time.perf_counter()
    loaded.bundle.estimator.predict_proba(X)
    plain = time.perf_counter() - started
    started = time.perf_counter()
    explain(loaded.bundle, X)
    reasons = time.perf_counter() - started
    trees = loaded.bundle.estimator.best_iteration_
    print(
        f"{len(X):,} rows, {trees} trees: plain {len(X) / plain:,.0f} rows/s, with reasons "
        f"{len(X) / reasons:,.0f} rows/s (incl. factor sentences); ratio {plain / reasons:.2f}"
    )
    read, predict = floor_seconds(work / "crm", args.deals)
    floor = read + predict
    print(
        f"floor: read the needed columns {read:.1f} s + LightGBM predict {predict:.1f} s = "
        f"{floor:.1f} s; end to end (median of {args.runs}) is {median / floor:.1f}x the floor"
    )
    print(
        f"target: within 30 s and 3 GiB -> median {median:.1f} s of "
        f"{', '.join(f'{each:.1f}' for each in seconds)}; peak RSS {peak / GIB:.2f} GiB "
        "(a run's own process)"
    )


if __name__ == "__main__":
    main()
