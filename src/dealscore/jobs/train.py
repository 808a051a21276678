"""Job: read an export and quarantine the rows that break the contract, train and evaluate
(pipeline.training), replay the recipe at past dates, then log and register the model in MLflow
(tracking.training_run)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dealscore.errors import DataError
from dealscore.io import read_export
from dealscore.io.secrets import redact
from dealscore.io.truth import read_truth
from dealscore.pipeline.training import TrainResult, TrainSettings, fit_and_evaluate, run_forward
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables
from dealscore.schemas.contract import require_dated
from dealscore.schemas.quarantine import quarantine
from dealscore.tracking.training_run import check_store, track_training


class TooManyRejectedError(DataError):
    """More of the export's deals break the data contract than training allows."""


def read_for_training(
    data: str | Path,
    mapping: str | Path | None,
    max_rejected_share: float,
    progress: Progress = silent,
) -> tuple[CrmTables, str]:
    """The export with the rows that break a row rule taken out with their deals (as scoring
    does), and what was taken out in words; above `max_rejected_share` of the deals, nothing."""
    progress(f"reading {redact(str(data))}")
    export = read_export(data, mapping)
    held = quarantine(export.tables)  # table-level errors (a missing column) still raise
    said = held.describe()
    if held.share > max_rejected_share:
        raise TooManyRejectedError(
            f"{export.source}: {len(held.deals):,} deals ({held.share:.1%}) break the data "
            f"contract, above max_rejected_share {max_rejected_share:.0%}: nothing was trained. "
            + said
        )
    require_dated(held.tables, held.report)
    if said:
        progress(f"{said}; training without them")
    return held.tables, said


def run_train(
    data: str | Path,
    settings: TrainSettings,
    mapping: str | Path | None = None,
    progress: Progress = silent,
) -> TrainResult:
    """Read and validate the export, train and evaluate, then log and register in MLflow."""
    if settings.track:
        check_store(settings)  # before hours of training, not after
    tables, quarantined = read_for_training(data, mapping, settings.max_rejected_share, progress)
    result = fit_and_evaluate(tables, settings, read_truth(data), progress)
    if quarantined:
        result = replace(result, notes=(quarantined, *result.notes))
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
