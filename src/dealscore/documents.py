"""What each command says, as one JSON document on stdout (`--json`): the facts of its text
summary (counts, metrics, the model and version, warnings, where the output went) for schedulers
and monitoring systems. The shapes are kept in docs/json/<command>.schema.json and tested; a
field is added, never renamed or removed, without a new `format` number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dealscore import __version__
from dealscore.flows.nightly import NightlyResult
from dealscore.io.secrets import redact
from dealscore.jobs.compare import CompareResult
from dealscore.jobs.ingest import ValidateResult
from dealscore.jobs.monitor import MonitorResult
from dealscore.jobs.score import ScoreResult
from dealscore.model.bundle import LoadedModel
from dealscore.pipeline.forward import ForwardTest
from dealscore.pipeline.periods import BacktestResult
from dealscore.pipeline.quarter import QuarterNumber
from dealscore.pipeline.training import TrainResult

FORMAT = 1  # the documents' version: a renamed or removed field makes it 2


def plain(value: Any) -> Any:
    """A JSON value: NumPy numbers as numbers, NaN and NaT as null, times in ISO 8601, frames as
    lists of records."""
    if isinstance(value, pd.DataFrame):
        return [plain(row) for row in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return plain(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str | bytes):
        return [plain(v) for v in value]
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, Path):
        return str(value)
    return value


def document(command: str, warnings: Sequence[str] = (), **fields: Any) -> dict[str, Any]:
    """The envelope every command's document shares."""
    return plain(
        {
            "command": command,
            "format": FORMAT,
            "dealscore": __version__,
            **fields,
            "warnings": list(warnings),
        }
    )


def failure(
    command: str, message: str, exit_code: int, issues: Sequence[Any] = ()
) -> dict[str, Any]:
    """What a failed command says under --json (its one line goes to stderr too); a broken
    data contract lists every broken rule."""
    return document(command, error=message, exit_code=exit_code, issues=[_issue(i) for i in issues])


def model_fields(loaded: LoadedModel) -> dict[str, Any]:
    return {
        "name": loaded.name,
        "version": loaded.version,
        "run_id": loaded.run_id,
        "alias": loaded.alias or None,
        "rung": loaded.bundle.estimator.rung,
        "rung_reason": loaded.bundle.metadata.get("rung_reason") or None,
        "horizon_days": loaded.bundle.horizon_days,
    }


def score_fields(result: ScoreResult) -> dict[str, Any]:
    """Reconciliation, bands, trends, rejects, drift and where the scores went."""
    scores = result.scores
    return {
        "as_of": result.as_of,
        "model": model_fields(result.model),
        "open_deals": result.open_deals,
        "scored": len(scores),
        "rejected": len(result.rejected),
        "rejected_by_rule": result.rejected["rule"].value_counts().to_dict(),
        "bands": result.by_band().to_dict(orient="index"),
        "trends": scores["trend"].value_counts().to_dict(),
        "drift_warnings": list(result.drift_warnings),
        "score_shift_psi": result.shift_since_previous,
        "destination": redact(result.destination),
        "seconds": result.seconds,
    }


def score_document(result: ScoreResult, warnings: Sequence[str]) -> dict[str, Any]:
    return document("score", warnings, **score_fields(result))


def _forward(forward: ForwardTest | None) -> dict[str, Any] | None:
    if forward is None:
        return None
    columns = ["date", "contender", "roc_auc", "brier", "log_loss", "ece"]
    columns += ["mean_predicted", "actual", "rows"]
    return {"table": forward.table[columns], "summary": forward.summary()}


def train_document(result: TrainResult, warnings: Sequence[str]) -> dict[str, Any]:
    model = result.model
    tracking = result.tracking
    registered = None
    if tracking is not None:
        registered = {
            "run_id": tracking.run_id,
            "tracking_uri": redact(tracking.tracking_uri),
            "model_uri": tracking.model_uri,
            "registered_model": tracking.registered_model,
            "version": tracking.version or None,
            "role": ("champion" if tracking.promoted else "challenger")
            if tracking.version
            else None,
            "reason": tracking.reason,
        }
    return document(
        "train",
        warnings,
        model={
            "rung": model.rung,
            "calibration": model.calibration_,
            "boosting_rounds": model.best_iteration_ or None,
            # the won-this-quarter model's (the win model has none): model/estimator.py
            "refit_correction": result.in_quarter.refit_shift_ if result.in_quarter else None,
            # whether its calibration reads the days left in the quarter (model/estimator.py)
            "timed_calibration": (
                result.in_quarter.timed_ is not None if result.in_quarter else None
            ),
            "recent_correction": model.shift_,
        },
        horizon_days=result.horizon_days,
        cutoff=result.window.get("cutoff"),
        notes=list(result.notes),
        # every contender on the newest fold's rows, out of fold; by age band too
        comparison=result.comparison.reset_index(drop=True),
        forward=_forward(result.forward),
        tracking=registered,
    )


def validate_document(result: ValidateResult) -> dict[str, Any]:
    report = result.report
    summary = result.summary
    return document(
        "validate",
        [str(issue) for issue in report.warnings],
        source=redact(str(result.source)),
        valid=report.ok,
        row_counts=report.row_counts,
        errors=[_issue(issue) for issue in report.errors],
        issues=[_issue(issue) for issue in report.issues],
        notes=list(result.notes),
        summary=None
        if summary is None
        else {
            "rows": summary.rows,
            "status_counts": summary.status_counts,
            "win_rate": summary.win_rate,
            "open_deals": summary.open_count,
            "open_value": summary.open_value,
            "first_created": summary.first_created,
            "last_created": summary.last_created,
        },
    )


def _issue(issue: Any) -> dict[str, Any]:
    return {
        "table": issue.table,
        "column": issue.column,
        "rule": issue.rule,
        "count": issue.count,
        "examples": list(issue.examples),
        "severity": issue.severity.value,
    }


def evaluate_document(forward: ForwardTest, out: Path | None) -> dict[str, Any]:
    return document(
        "evaluate",
        forward=_forward(forward),
        reliability=forward.reliability(),
        out=out,
    )


def _number(number: QuarterNumber | None) -> dict[str, Any] | None:
    if number is None:
        return None
    return {
        "period": number.period,
        "as_of": number.as_of,
        "model": number.model,
        "booked": number.booked,
        "booked_deals": number.booked_deals,
        "open": number.open,
        "open_deals": number.open_deals,
        "not_yet_created": number.new,
        "low": number.low,
        "high": number.high,
        "rep_commit": number.rep_commit,
        "rep_commit_best_case": number.rep_commit_best_case,
        "notes": list(number.notes),
    }


def compare_document(result: CompareResult) -> dict[str, Any]:
    moves = result.moves
    return document(
        "compare",
        [result.coverage_warning] if result.coverage_warning else [],
        period=result.period,
        as_of=result.as_of,
        closed=result.closed,
        model=model_fields(result.model),
        number=_number(result.number),
        by_group=result.numbers,
        moves=moves.summary() if moves is not None else None,
        due_deals=result.table,
    )


def backtest_document(result: BacktestResult, out: Path | None) -> dict[str, Any]:
    return document(
        "backtest",
        skipped=result.skipped,
        forecasts=result.forecasts,
        accuracy=result.accuracy(),
        out=out,
    )


def monitor_document(result: MonitorResult, out: Path | None) -> dict[str, Any]:
    return document(
        "monitor",
        model_name=result.model_name,
        now=result.now,
        counts=result.counts,
        gone=list(result.gone()),
        table=result.table,
        out=out,
    )


def nightly_document(result: NightlyResult, warnings: Sequence[str]) -> dict[str, Any]:
    counts = result.monitor.counts
    pooled = result.monitor.table.iloc[0] if len(result.monitor.table) else None
    return document(
        "nightly",
        warnings,
        score=score_fields(result.score),
        monitor={
            "counts": counts,
            "mean_predicted": None if pooled is None else pooled["mean_predicted"],
            "won": None if pooled is None else pooled["won"],
            "ece": None if pooled is None else pooled["ece"],
        },
        retraining_due=list(result.reasons),
        decision=result.decision,
    )
