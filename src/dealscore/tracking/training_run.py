"""Job step: log a training run to MLflow, log the pyfunc model, register it and set aliases."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.code_dataset_source import CodeDatasetSource

from dealscore import __version__
from dealscore.features import FEATURE_NAMES
from dealscore.io.secrets import redact
from dealscore.pipeline.training import Tracking, TrainResult, TrainSettings
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables
from dealscore.tracking.promotion import MIN_COMPARED_ROWS, ChampionCheck, register_and_gate
from dealscore.tracking.pyfunc import (
    BUNDLE_ARTIFACT,
    DIGEST_TAG,
    ENTRY_SCRIPT,
    PACKAGE_DIR,
    model_digest,
    pip_requirements,
    save_bundle,
    signature,
)
from dealscore.tracking.registry import model_name
from dealscore.tracking.store import tracking_uri, use_store
from dealscore.tracking.training_artifacts import write_artifacts

# ChampionCheck and MIN_COMPARED_ROWS moved to tracking.promotion; still importable from here.
__all__ = ["MIN_COMPARED_ROWS", "ChampionCheck", "check_store", "git_commit", "track_training"]


def git_commit() -> str | None:
    """The commit of the dealscore source, when it runs from a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _experiment(settings: TrainSettings) -> tuple[str, str | None]:
    """(tracking URI, experiment id); under `mlflow run` the run and experiment already exist."""
    uri = tracking_uri(settings.tracking_uri)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_tracking_uri(uri)
        return uri, os.environ.get("MLFLOW_EXPERIMENT_ID")
    return uri, use_store(uri, settings.experiment)


def check_store(settings: TrainSettings) -> None:
    """Fail fast (TrackingError) when the tracking store cannot be used."""
    _experiment(settings)


def track_training(
    result: TrainResult,
    tables: CrmTables,
    settings: TrainSettings,
    source: str,
    mapping: str | Path | None = None,
    progress: Progress = silent,
) -> Tracking:
    """One MLflow run: parameters, metrics, plots, model card, input fingerprint, the model."""
    uri, experiment_id = _experiment(settings)
    client = mlflow.MlflowClient()
    source = redact(source)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        progress(f"MLflow run {run.info.run_id} in {uri}")
        _log_params(result, settings, source, mapping)
        _log_metrics(result)
        _log_input(tables, source, mapping)
        coverage = tables.coverage()  # kept in the model, and compared with the champion's
        model_uri, digest = _log_model(
            result, settings, source, coverage, run.info.run_id, progress
        )
        name = settings.registered_model or model_name(source)
        version, decision = register_and_gate(
            client, model_uri, name, result, tables, coverage, settings, source, digest
        )
        return Tracking(
            run.info.run_id,
            run.info.experiment_id,
            uri,
            model_uri,
            version,
            decision.promote,
            decision.reason,
            name,
        )


def _log_params(
    result: TrainResult, settings: TrainSettings, source: str, mapping: str | Path | None
) -> None:
    """The run's tags (version, data, commit) and parameters: the settings and what was chosen."""
    mlflow.set_tags(
        {
            "dealscore.version": __version__,
            "dealscore.data": source,
            **({"mlflow.source.git.commit": commit} if (commit := git_commit()) else {}),
        }
    )
    mlflow.log_params(
        {
            **asdict(settings),
            # Not "data" / "mapping": `mlflow run` logs its entry-point parameters under those.
            "data_source": source,
            "data_mapping": str(mapping or ""),
            "rung": result.model.rung,
            "calibration_chosen": result.model.calibration_,
            "best_iteration": result.model.best_iteration_,
            "in_quarter_refit_shift": result.in_quarter.refit_shift_ if result.in_quarter else "",
            "in_quarter_timed_calibration": (
                result.in_quarter.timed_ is not None if result.in_quarter else ""
            ),
            "recent_shift": result.model.shift_,
            **{f"rows_{name}": rows for name, rows in result.fold_rows.items()},
            **{name: str(value) for name, value in result.window.items()},
            "label_horizon_days": result.horizon_days or "",
        }
    )


def _log_metrics(result: TrainResult) -> None:
    """Every contender's metrics, the ladder's losses and choice, the side models' metrics, the
    three outcomes, the forward test and heroics."""
    mlflow.log_metrics(_metrics(result.comparison))
    mlflow.log_metrics(
        {f"ladder.{rung}.oof_log_loss": loss for rung, loss in result.ladder.losses.items()}
    )
    mlflow.set_tag("dealscore.rung", f"{result.ladder.chosen}: {result.ladder.reason}"[:5000])
    mlflow.log_metrics({f"in_quarter.{k}": v for k, v in result.in_quarter_metrics.items()})
    if result.outcome_metrics is not None:
        mlflow.log_metrics(_outcome_metrics(result.outcome_metrics))
    if result.forward is not None:
        mlflow.log_metrics(_forward_metrics(result.forward.table))
    mlflow.log_metrics(
        {"heroic_flagged": result.heroics.flagged}
        | {f"heroics.weighted.{k}": v for k, v in (result.heroics.weighted or {}).items()}
        | {f"heroics.unweighted.{k}": v for k, v in (result.heroics.unweighted or {}).items()}
    )


def _metrics(comparison: pd.DataFrame) -> dict[str, float]:
    """Every contender's metrics per segment, and the model's overall ones as the headline."""
    names = ["roc_auc", "pr_auc", "log_loss", "brier", "ece"]
    out = {
        f"{row.contender}.{row.segment}.{name}": float(getattr(row, name))
        for row in comparison.itertuples()
        for name in names
        if np.isfinite(getattr(row, name))
    }
    model = comparison[(comparison["contender"] == "model") & (comparison["segment"] == "all")]
    out.update({name: float(model[name].iloc[0]) for name in names})  # headline: sortable in the UI
    return out


def _outcome_metrics(outcome_metrics: pd.DataFrame) -> dict[str, float]:
    """The three outcomes' metrics per contender, named by the outcome's first word."""
    return {
        f"outcomes.{row.contender}.{row.outcome.split(' ')[0]}.{metric}": float(value)
        for row in outcome_metrics.itertuples()
        for metric in ("ece", "roc_auc", "brier")
        if np.isfinite(value := getattr(row, metric))
    }


def _forward_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The forward test's pooled metrics per contender."""
    return {
        f"forward.{row.contender}.{metric}": float(getattr(row, metric))
        for row in table[table["date"] == "pooled"].itertuples()
        for metric in (
            "roc_auc",
            "brier",
            "log_loss",
            "ece",
            "mean_predicted",
            "actual",
        )
    }


def _log_input(tables: CrmTables, source: str, mapping: str | Path | None) -> None:
    """The export as the run's input, fingerprinted."""
    mlflow.log_input(
        mlflow.data.from_pandas(  # type: ignore[attr-defined]  # lazily exported
            tables.opportunities,
            # An explicit source: a plain string is ambiguous to MLflow (and may be a URL).
            source=CodeDatasetSource({"crm_export": source, "mapping": str(mapping or "")}),
            name=f"crm:{Path(source).name or source}",
            digest=tables.fingerprint(),
        ),
        context="training",
    )


def _log_model(
    result: TrainResult,
    settings: TrainSettings,
    source: str,
    coverage: tuple[str, ...],
    run_id: str,
    progress: Progress,
) -> tuple[str, str]:
    """The artifacts and the pyfunc model, logged; (the model's URI, the digest of its files)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_artifacts(result, settings, source, folder)
        mlflow.log_artifacts(str(folder))
        progress("logging the model")
        bundle = result.bundle(
            {
                "run_id": run_id,
                "dealscore_version": __version__,
                "rung_reason": result.ladder.reason,
            },
            coverage,
        )
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(ENTRY_SCRIPT),
            artifacts={BUNDLE_ARTIFACT: str(save_bundle(bundle, folder))},
            code_paths=[str(PACKAGE_DIR)],
            signature=signature(list(FEATURE_NAMES)),
            input_example=result.test[FEATURE_NAMES].head(3),
            pip_requirements=pip_requirements(),
        )
        # The digest of the files as stored, kept in the tracking store: loading refuses
        # files that no longer match it (tracking.models).
        logged = mlflow.artifacts.download_artifacts(
            artifact_uri=info.model_uri, dst_path=str(folder / "logged")
        )
        digest = model_digest(Path(logged))
        mlflow.set_tag(DIGEST_TAG, digest)
    return info.model_uri, digest
