"""Training speed and memory on about 2M snapshot rows, the forward test and MLflow included.

    .venv/bin/python benchmarks/train.py --deals 330000

Generates a CRM (not measured), then times the training job's stages as it reports them
(grid snapshots and features, fit, evaluation, the forward test at 3 past dates, MLflow) with
the peak resident memory of each, into a temporary MLflow store. The reference measured in the
same run is one LightGBM fit of 100 rounds with no early stopping or calibration on the same
training rows: the ratio says what the rest costs.
"""

from __future__ import annotations

import argparse
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
    """Progress callback: the time and peak RSS between consecutive progress messages."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.process = psutil.Process()
        self.message = "start"

    def __call__(self, message: str) -> None:
        now = time.perf_counter()
        rss = self.process.memory_info().rss
        print(f"  {now - self.last:7.1f} s  (RSS {rss / GIB:5.2f} GiB)  {self.message}", flush=True)
        self.last, self.message = now, message


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=330_000)
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
            step.rows = sum(result.slice_rows.values())
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
        "snapshot rows: "
        + ", ".join(f"{name} {rows:,}" for name, rows in result.slice_rows.items())
        + f" (total {sum(result.slice_rows.values()):,}); boosting rounds {result.model.best_iteration_}"
    )

    print(result.forward.summary())
    # Reference: a bare 100-round LightGBM fit on the same training rows.
    train = training_rows(tables, settings).parts["train"]
    label = train["label"].to_numpy()
    with recorder.step("reference: LightGBM 100 rounds") as step:
        lgb.LGBMClassifier(n_estimators=100, learning_rate=0.03, n_jobs=2, verbose=-1).fit(
            train[FEATURE_NAMES], label
        )
        step.rows = len(train)
    job = sum(step.seconds for step in recorder.steps[:3])
    reference = recorder.steps[-1].seconds
    print(
        f"training job {job:.0f} s (fit + evaluate {recorder.steps[0].seconds:.0f} s, forward test "
        f"{recorder.steps[1].seconds:.0f} s, MLflow {recorder.steps[2].seconds:.0f} s) = "
        f"{job / reference:.1f}x the 100-round reference fit; "
        f"job peak RSS {max(s.rss_peak for s in recorder.steps[:3]) / GIB:.2f} GiB"
    )


if __name__ == "__main__":
    main()
