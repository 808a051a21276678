"""Job: read and validate an export, train and evaluate (pipeline.training), replay the recipe
at past dates, then log and register the model in MLflow (tracking.training_run)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dealscore.io import read_valid
from dealscore.io.truth import read_truth
from dealscore.pipeline.training import TrainResult, TrainSettings, fit_and_evaluate, run_forward
from dealscore.progress import Progress, silent
from dealscore.tracking.training_run import check_store, track_training


def run_train(
    data: str | Path,
    settings: TrainSettings,
    mapping: str | Path | None = None,
    progress: Progress = silent,
) -> TrainResult:
    """Read and validate the export, train and evaluate, then log and register in MLflow."""
    if settings.track:
        check_store(settings)  # before hours of training, not after
    tables = read_valid(data, mapping, progress)
    result = fit_and_evaluate(tables, settings, read_truth(data), progress)
    if settings.forward_dates > 0:
        try:
            result = replace(result, forward=run_forward(tables, settings, progress=progress))
        except ValueError as exc:  # the history is too short to replay: train all the same
            progress(f"WARNING: no forward test: {exc}")
    if not settings.track:
        return result
    return replace(
        result,
        tracking=track_training(result, tables, settings, str(data), mapping, progress),
    )
