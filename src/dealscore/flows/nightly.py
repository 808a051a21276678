"""Flow: the night's whole loop. Score the open deals with the champion, see how the scores
already written turned out (jobs.monitor), and train a challenger when the champion is due:
its data too old, its realised calibration off, or its inputs drifted. The registry's gate
decides whether the challenger takes over. Safe to rerun on the same export: the scores of the
run are replaced and a challenger already trained on this export is not trained again."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

import mlflow
import pandas as pd
import pydantic.dataclasses
from pydantic import Field

from dealscore.features.snapshots import HORIZON_BOUNDS
from dealscore.jobs.monitor import MonitorResult, MonitorSettings, run_monitor
from dealscore.jobs.score import run_score
from dealscore.jobs.train import run_train
from dealscore.pipeline.monitor import Realised, retrain_reasons
from dealscore.pipeline.scoring import ScoreResult, ScoreSettings
from dealscore.pipeline.training import TrainResult, TrainSettings
from dealscore.progress import Progress, silent
from dealscore.settings import SETTINGS, FileSetting, default, load_settings
from dealscore.tracking.nightly_run import Night, log_nightly
from dealscore.tracking.registry import EXPORT_TAG, registered_at, trained_on
from dealscore.tracking.store import tracking_uri as resolve

DAY = pd.Timedelta(days=1)


@pydantic.dataclasses.dataclass(frozen=True, config=SETTINGS)
class NightlySettings:
    out: str = default(ScoreSettings, "out")  # where scores are written and read back
    format: Literal["parquet", "csv"] = "parquet"  # of a folder destination
    model: str = ""  # "": the champion of the export's own CRM
    tracking_uri: str = ""
    # A challenger is trained when the champion learned from data older than this...
    retrain_every_days: Annotated[float, Field(gt=0)] = 30.0
    # ...or its scores of its last `nights` elapsed nights are off by more than this ECE (and by
    # more than chance gives on as many deals), or the drift check warns.
    nights: Annotated[int, Field(ge=1)] = default(MonitorSettings, "nights")
    max_realised_ece: Annotated[float, Field(gt=0, le=1)] = default(
        MonitorSettings, "max_realised_ece"
    )
    # The training settings (TOML) a challenger is trained with.
    train_config: Annotated[str, FileSetting()] = ""
    retrain: bool = True  # False: say whether a challenger is due, train none


@dataclass(frozen=True)
class NightlyResult:
    score: ScoreResult
    monitor: MonitorResult
    realised: Realised | None  # the champion's last elapsed nights
    age_days: float | None  # from the champion's training cut-off to as_of
    reasons: tuple[str, ...]  # why a challenger is due; empty: it is not
    decision: str  # one line: what happened to the champion tonight
    trained: TrainResult | None = None


def _age(result: ScoreResult, uri: str) -> float | None:
    """Days from the champion's training cut-off to as_of; a model saved before the cut-off was
    kept: from its registration."""
    loaded = result.model
    if cutoff := loaded.bundle.metadata.get("cutoff"):
        return (result.as_of - pd.Timestamp(cutoff)) / DAY
    registered = registered_at(mlflow.MlflowClient(uri), loaded.name, loaded.version)
    return None if registered is None else (time.time() - registered) / 86_400


def _train(
    data: str | Path,
    settings: NightlySettings,
    name: str,
    export: str,
    mapping: str | Path | None,
    progress: Progress,
) -> TrainResult:
    """A challenger, registered under the champion's name and gated against it."""
    config = Path(settings.train_config) if settings.train_config else None
    train = load_settings(TrainSettings, config)
    train = replace(train, tracking_uri=settings.tracking_uri, registered_model=name, track=True)
    result = run_train(data, train, mapping, progress)
    tracking = result.tracking
    assert tracking is not None and tracking.version is not None  # tracked: registered
    mlflow.MlflowClient(resolve(settings.tracking_uri)).set_model_version_tag(
        name, tracking.version, EXPORT_TAG, export
    )
    return result


def run_nightly(
    data: str | Path,
    settings: NightlySettings,
    as_of: pd.Timestamp | None = None,
    mapping: str | Path | None = None,
    progress: Progress = silent,
) -> NightlyResult:
    """Score, monitor, and retrain when due; logs a run of its own beside the scoring and
    training runs, with the decision."""
    score_settings = ScoreSettings(
        model=settings.model,
        out=settings.out,
        format=settings.format,
        tracking_uri=settings.tracking_uri,
    )
    scored = run_score(data, score_settings, as_of, mapping, progress)
    champion = scored.model
    monitored = _monitor(data, settings, scored, mapping, progress)
    check = monitored.realised(champion.version, settings.nights)
    uri = resolve(settings.tracking_uri)
    age = _age(scored, uri)
    reasons = tuple(
        retrain_reasons(
            age,
            settings.retrain_every_days,
            check,
            settings.max_realised_ece,
            scored.drift_warnings,
        )
    )
    export = monitored.now.isoformat()
    trained = None
    if not reasons:
        decision = f"{champion.describe()} kept: no retraining due ({_standing(age, check)})"
    elif (done := trained_on(mlflow.MlflowClient(uri), champion.name, export)) is not None:
        decision = (
            f"challenger v{done.version} was already trained on this export ({export}): "
            f"{done.tags.get('promotion', '')}; not trained again"
        )
    elif not settings.retrain:
        decision = f"{champion.describe()} kept: a challenger is due (--no-retrain)"
    else:
        progress("training a challenger: " + "; ".join(reasons))
        trained = _train(data, settings, champion.name, export, mapping, progress)
        decision = _outcome(trained, champion.version)
    run = trained.tracking.run_id if trained is not None and trained.tracking else ""
    night = Night(
        scored.as_of,
        f"{champion.name} v{champion.version}",
        monitored.counts,
        check,
        age,
        reasons,
        decision,
        monitored.table,
        run,
    )
    log_nightly(night, uri)
    return NightlyResult(scored, monitored, check, age, reasons, decision, trained)


def _monitor(
    data: str | Path,
    settings: NightlySettings,
    scored: ScoreResult,
    mapping: str | Path | None,
    progress: Progress,
) -> MonitorResult:
    """How the champion's written scores turned out. It reads the last `nights` judged runs, at
    up to four days apart, not the whole history (a year of a million deals a night would not
    fit in memory)."""
    champion = scored.model
    window = (champion.bundle.horizon_days or HORIZON_BOUNDS[1]) + 4 * settings.nights
    return run_monitor(
        data,
        MonitorSettings(
            scores=settings.out,
            format=settings.format,
            model_name=champion.name,
            nights=settings.nights,
            max_realised_ece=settings.max_realised_ece,
            since=scored.as_of - window * DAY,
        ),
        mapping,
        progress,
    )


def _outcome(trained: TrainResult, champion_version: int | str) -> str:
    """What the gate made of the challenger just trained."""
    tracking = trained.tracking
    assert tracking is not None
    if tracking.promoted:
        return (
            f"challenger v{tracking.version} promoted over v{champion_version}: {tracking.reason}"
        )
    return f"champion v{champion_version} kept: challenger v{tracking.version} {tracking.reason}"


def _standing(age: float | None, check: Realised | None) -> str:
    """How the champion stands: its age and its realised calibration so far."""
    said = [] if age is None else [f"its data is {age:,.0f} days old"]
    said.append(check.describe() if check is not None else "none of its scores has elapsed yet")
    return "; ".join(said)
