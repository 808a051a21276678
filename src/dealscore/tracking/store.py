"""Where runs and models go: an explicit URI, else MLFLOW_TRACKING_URI, else a project-local
SQLite store (`mlflow.db`, artifacts in `mlruns/`), the same place `mlflow ui` and
`mlflow run` use by default in MLflow 3."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

from dealscore.errors import DealscoreError

LOCAL_DB = "mlflow.db"


def tracking_uri(explicit: str = "", folder: Path | None = None) -> str:
    """The tracking URI this job uses."""
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{((folder or Path.cwd()) / LOCAL_DB).resolve()}"


def missing_local_store(uri: str) -> str:
    """The path of a SQLite tracking store that does not exist yet ('' for any other store):
    reading models from it could only fail, and MLflow would create it empty on the way."""
    if not uri.startswith("sqlite:///"):
        return ""
    path = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    # Under a file: an unusable store, which use_store says. In a folder that is not there: as
    # missing as the file (MLflow would create the folder too).
    if path.is_file() or any(parent.is_file() for parent in path.parents):
        return ""
    return str(path)


class TrackingError(DealscoreError, RuntimeError):
    """The tracking store cannot be reached or used."""


def use_store(uri: str, experiment: str) -> str:
    """Point MLflow at `uri` and the named experiment (created if new); returns its id."""
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.set_experiment(experiment).experiment_id
    except MlflowException as exc:
        raise TrackingError(f"MLflow tracking store {uri} is not usable: {exc.message}") from exc
    except (OSError, SQLAlchemyError) as exc:  # a local store's folder or database file
        raise TrackingError(
            f"MLflow tracking store {uri} is not usable: {exc.__class__.__name__}: {exc}"
        ) from exc
