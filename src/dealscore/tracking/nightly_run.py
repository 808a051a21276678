"""The MLflow run of a night: how the champion's written scores did, and what was decided."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd

from dealscore.pipeline.monitor import Realised

EXPERIMENT = "dealscore-nightly"


@dataclass(frozen=True)
class Night:
    """What a night's run logs."""

    as_of: pd.Timestamp
    champion: str  # "name vN"
    counts: dict[str, int]  # written scores by state: elapsed, pending, gone
    realised: Realised | None
    age_days: float | None
    reasons: tuple[str, ...]
    decision: str
    table: pd.DataFrame  # the monitor's table
    challenger_run_id: str = ""


def log_nightly(night: Night, uri: str) -> None:
    """One run per night: the champion, its realised calibration, why a challenger was due,
    the decision, and the monitor's table as an artifact."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(uri)
    if not os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run`, log into its run
        mlflow.set_experiment(EXPERIMENT)
    check = night.realised
    with mlflow.start_run(nested=bool(mlflow.active_run())):
        mlflow.log_params({"nightly.as_of": str(night.as_of), "nightly.champion": night.champion})
        mlflow.log_metrics(
            {
                **{f"scores_{state}": float(n) for state, n in night.counts.items()},
                "retrain_due": float(bool(night.reasons)),
                **({"champion_age_days": night.age_days} if night.age_days is not None else {}),
                **(
                    {
                        "realised_ece": check.ece,
                        "realised_chance_ece": check.chance,
                        "realised_mean_predicted": check.mean_predicted,
                        "realised_won": check.won,
                        "realised_rows": float(check.rows),
                    }
                    if check is not None
                    else {}
                ),
            }
        )
        mlflow.set_tags(
            {
                "dealscore.decision": night.decision[:5000],
                "dealscore.retrain_reasons": "; ".join(night.reasons)[:5000],
                **(
                    {"dealscore.challenger_run_id": night.challenger_run_id}
                    if night.challenger_run_id
                    else {}
                ),
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "monitor.csv"
            night.table.to_csv(path, index=False)
            mlflow.log_artifact(str(path))
