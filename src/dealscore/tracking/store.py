"""Where runs and models go: an explicit URI, else MLFLOW_TRACKING_URI, else a project-local
SQLite store (`mlflow.db`, artifacts in `mlruns/`), the same place `mlflow ui` and
`mlflow run` use by default in MLflow 3."""

from __future__ import annotations

import http.client
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

from dealscore.errors import DealscoreError
from dealscore.io.secrets import redact

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


# How long a tracking server has to answer once before any MLflow call. MLflow's own client
# retries an unanswered request 7 times with backoff (MLFLOW_HTTP_REQUEST_MAX_RETRIES,
# _BACKOFF_FACTOR, _TIMEOUT): minutes before a server that is down is reported.
PROBE_SECONDS = 5.0


def probe(uri: str) -> None:
    """An HTTP(S) tracking server that does not answer fails now, in seconds, in one line.
    Any answer will do (even 401 or 404): what the server says is MLflow's to read."""
    if not uri.startswith(("http://", "https://")):
        return
    seconds = PROBE_SECONDS
    parts = urllib.parse.urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]  # no credentials: any answer will do
    health = urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", "")
    )
    try:
        with urllib.request.urlopen(health, timeout=seconds):
            return
    except urllib.error.HTTPError:
        return  # it answered
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return  # it answered TLS; its certificate is MLflow's to judge (MLFLOW_TRACKING_*)
        reason: object = exc.reason
    except (OSError, http.client.HTTPException) as exc:  # a timeout, a reset, a bad answer
        reason = exc
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        why = f"it does not answer within {seconds:g} s"
    else:
        why = f"nothing answers there ({reason})"
    raise TrackingError(
        redact(
            f"MLflow tracking store {uri} is not usable: {why}; is the server running, "
            "and is --tracking-uri (or MLFLOW_TRACKING_URI) right?"
        )
    )


def use_store(uri: str, experiment: str) -> str:
    """Point MLflow at `uri` and the named experiment (created if new); returns its id."""
    probe(uri)
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.set_experiment(experiment).experiment_id
    except MlflowException as exc:
        raise TrackingError(f"MLflow tracking store {uri} is not usable: {exc.message}") from exc
    except (OSError, SQLAlchemyError) as exc:  # a local store's folder or database file
        raise TrackingError(
            f"MLflow tracking store {uri} is not usable: {exc.__class__.__name__}: {exc}"
        ) from exc
