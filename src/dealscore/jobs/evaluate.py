"""Job: the forward test on its own. Read and validate an export, replay the training recipe at
past dates (pipeline.training.run_forward), and write every scored deal when asked to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dealscore.io import read_valid, write_frame
from dealscore.pipeline.forward import ForwardTest
from dealscore.pipeline.training import TrainSettings, run_forward
from dealscore.progress import Progress, silent


@dataclass(frozen=True)
class EvaluateResult:
    forward: ForwardTest
    out: Path | None  # where every scored deal was written; None: nowhere


def run_evaluate(
    data: str | Path,
    settings: TrainSettings,
    dates: list[pd.Timestamp] | None = None,
    mapping: str | Path | None = None,
    out: Path | None = None,
    progress: Progress = silent,
) -> EvaluateResult:
    """The forward test at `dates` (default: the recipe's own, as in training); with `out`, the
    scored deals written there as CSV, or Parquet by the suffix."""
    tables = read_valid(data, mapping, progress)
    forward = run_forward(tables, settings, dates, progress=progress)
    if out is not None:
        write_frame(forward.rows, out)
    return EvaluateResult(forward, out)
