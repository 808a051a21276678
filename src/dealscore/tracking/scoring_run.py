"""The MLflow run of a scoring: where, with which model, how many, and the drift."""

from __future__ import annotations

import os
from dataclasses import asdict

import mlflow

from dealscore.io.secrets import redact
from dealscore.pipeline.scoring import ScoreResult, ScoreSettings
from dealscore.tracking.store import tracking_uri


def log_scoring(result: ScoreResult, settings: ScoreSettings) -> None:
    """An MLflow run per scoring: where, with what, how many, and the drift."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(tracking_uri(settings.tracking_uri))
    if not os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run`, log into its run
        mlflow.set_experiment(settings.experiment)
    with mlflow.start_run():
        # Prefixed: `mlflow run` logs its entry point's parameters (data, out, model) already.
        mlflow.log_params(
            {
                **{f"score.{k}": v for k, v in asdict(settings).items() if k != "tracking_uri"},
                "score.out": redact(settings.out),  # never a database password
                "score.model_version": result.model.version,
                "score.model_run_id": result.model.run_id,
                "score.as_of": str(result.as_of),
                "score.destination": redact(result.destination),
            }
        )
        bands_share = result.scores["band"].value_counts(normalize=True)
        mlflow.log_metrics(
            {
                "open_deals": result.open_deals,
                "scored": len(result.scores),
                "rejected": len(result.rejected),
                "mean_probability": float(result.scores["win_probability"].mean()),
                "psi_max": float(result.drift.max()) if len(result.drift) else 0.0,
                "drift_warnings": len(result.drift_warnings),
                **{f"band_{band}": float(bands_share.get(band, 0.0)) for band in "ABCD"},
                **{f"psi.{name}": float(v) for name, v in result.drift.items()},
                **(
                    {"psi_vs_previous_run": shift}
                    if (shift := result.shift_since_previous) is not None
                    else {}
                ),
            }
        )
        if result.drift_warnings:  # what moved, in the words the command line prints
            mlflow.log_text("\n".join(result.drift_warnings) + "\n", "drift_warnings.txt")
