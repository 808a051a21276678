"""Training speed and memory on about 2M snapshot rows, the forward test and MLflow included.

    .venv/bin/python benchmarks/train.py --deals 300000

Generates a CRM (not measured), then times the training job's stages as it reports them
(grid snapshots and features, each rung of each model ladder cross-fitted over the time folds,
evaluation, the forward test at 3 past dates, MLflow) with the peak resident memory of each,
into a temporary MLflow store. The references measured in the same run: one LightGBM fit on
all the labelled rows with the rounds the folds chose (what training without cross-fitting
would cost for that model), which says what cross-fitting costs, and the job as a multiple of
it.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).parent))

from measure import GIB, Recorder

from dealscore.features import FEATURE_NAMES
from dealscore.pipeline.training import TrainSettings, fit_and_evaluate, run_forward, training_rows
from dealscore.synthetic import GeneratorSettings, generate_crm
from dealscore.tracking.training_run import track_training

EXPORT = pd.Timestamp("2026-11-01", tz="UTC")


class StageClock:
    """Progress callback: the time and peak RSS between consecutive progress messages; the
    win model's seconds per rung are kept (`seconds`)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.process = psutil.Process()
        self.message = "start"
        self.seconds: dict[str, float] = {}

    def __call__(self, message: str) -> None:
        now = time.perf_counter()
        rss = self.process.memory_info().rss
        print(f"  {now - self.last:7.1f} s  (RSS {rss / GIB:5.2f} GiB)  {self.message}", flush=True)
        # "win model: cross-fitting RUNG ..." and then "win model (RUNG): round ..."
        found = re.match(r"win model(?:: cross-fitting (\w+)| \((\w+)\): round)", self.message)
        if found:
            rung = found.group(1) or found.group(2)
            self.seconds[rung] = self.seconds.get(rung, 0.0) + now - self.last
        self.last, self.message = now, message


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"generating {args.deals:,} deals (not measured)", flush=True)
    tables = generate_crm(
        GeneratorSettings(deals=args.deals, seed=args.seed, export_date=EXPORT)
    ).tables
    settings = TrainSettings(seed=args.seed)
    recorder = Recorder(interval=0.05)
    with tempfile.TemporaryDirectory() as store:
        settings = replace(settings, tracking_uri=f"sqlite:///{store}/mlflow.db")
        with recorder.step("train (fit_and_evaluate)") as step:
            clock = StageClock()
            result = fit_and_evaluate(tables, settings, progress=clock)
            clock("done")
            step.rows = len(result.model.oof_)
        fitting = clock
        with recorder.step("forward test (3 past dates)") as step:
            clock = StageClock()
            forward = run_forward(tables, settings, progress=clock)
            clock("done")
            step.rows = len(forward.rows)
            result = replace(result, forward=forward)
        with recorder.step("MLflow log + register") as step:
            clock = StageClock()
            track_training(result, tables, settings, "generated", progress=clock)
            clock("done")
    print(
        f"{len(result.model.oof_):,} labelled snapshot rows; cross-fitted per time fold: "
        + ", ".join(f"{name} {rows:,}" for name, rows in result.fold_rows.items())
        + f" (total {sum(result.fold_rows.values()):,}); rung {result.ladder.chosen}; "
        + ", ".join(f"{r} {loss:.4f}" for r, loss in result.ladder.losses.items())
    )
    print(result.forward.summary())
    # Reference: one LightGBM fit on every labelled row, with the rounds the folds chose.
    boosted = result.ladder.models["lightgbm"]
    rows = training_rows(tables, settings).rows
    with recorder.step("reference: one LightGBM fit") as step:
        lgb.train(
            boosted.scorer_.params_,
            lgb.Dataset(rows[FEATURE_NAMES], rows["label"], weight=rows["weight"]),
            num_boost_round=boosted.best_iteration_,
        )
        step.rows = len(rows)
    job = sum(step.seconds for step in recorder.steps[:3])
    reference = recorder.steps[-1].seconds
    print(
        f"training job {job:.0f} s (fit + evaluate {recorder.steps[0].seconds:.0f} s, forward test "
        f"{recorder.steps[1].seconds:.0f} s, MLflow {recorder.steps[2].seconds:.0f} s); one "
        f"LightGBM fit of {boosted.best_iteration_} rounds on all {len(rows):,} rows: "
        f"{reference:.0f} s; the win model's LightGBM rung cross-fitted over "
        f"{len(result.fold_rows)} folds and refitted: {fitting.seconds.get('lightgbm', 0):.0f} s "
        f"({fitting.seconds.get('lightgbm', 0) / reference:.1f}x the single fit); the job "
        f"{job / reference:.1f}x; job peak RSS "
        f"{max(s.rss_peak for s in recorder.steps[:3]) / GIB:.2f} GiB"
    )


if __name__ == "__main__":
    main()
