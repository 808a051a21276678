"""Loading a registered dealscore model: by alias, version or run, with errors that say what is
there (the versions, why none is champion) and never an empty store created on the way."""

from __future__ import annotations

import mlflow
from mlflow.exceptions import MlflowException

from dealscore.errors import DealscoreError
from dealscore.model.bundle import LoadedModel
from dealscore.tracking.pyfunc import OutdatedModelError, load_bundle
from dealscore.tracking.store import missing_local_store
from dealscore.tracking.store import tracking_uri as resolve


class ModelNotFoundError(DealscoreError, LookupError):
    """The model URI names no model the tracking store has."""


def require_store(model: str, store: str) -> None:
    """A registry or run model from a local store that does not exist: say so, before MLflow
    creates the store empty on the way to failing."""
    if model.startswith(("models:/", "runs:/")) and (missing := missing_local_store(store)):
        raise ModelNotFoundError(
            f"no model {model}: there is no MLflow store at {missing} yet (train one with "
            "`dealscore train`, or pass --tracking-uri)"
        )


def _why_no_alias(client, name: str, alias: str) -> str:
    """When the model exists but not the alias: which versions there are and why the latest
    was not promoted, with the URI that uses it anyway."""
    if not alias:
        return ""
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except Exception:
        return ""
    if not versions:
        return ""
    latest = max(versions, key=lambda v: int(v.version))
    why = latest.tags.get("promotion", "")
    return (
        f"({name} has {len(versions)} version(s); the latest, v{latest.version}, "
        f"{'was ' + why if why.startswith('not promoted') else 'is not ' + alias}. To use it "
        f"anyway: --model models:/{name}/{latest.version})"
    )


def load_model(uri: str, tracking_uri: str = "") -> LoadedModel:
    """The dealscore model behind a `models:/name@alias`, `models:/name/version` or run URI."""

    store = resolve(tracking_uri)
    require_store(uri, store)
    mlflow.set_tracking_uri(store)
    client = mlflow.MlflowClient()
    name, version, run_id, alias = "dealscore", "", "", ""
    try:
        if uri.startswith("models:/"):
            ref = uri.removeprefix("models:/")
            found = None
            if "@" in ref:
                name, alias = ref.split("@", 1)
                found = client.get_model_version_by_alias(name, alias)
            elif "/" in ref:
                name, _, number = ref.partition("/")
                found = client.get_model_version(name, number)
            # else an MLflow 3 logged model (models:/m-...), loaded as it is, outside the registry
            if found is not None:
                version, run_id = str(found.version), found.run_id or ""
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        first = exc.message.splitlines()[0]
        if "Max retries exceeded" in first or "Connection" in first:
            raise ModelNotFoundError(f"cannot reach the tracking store {store}: {first}") from exc
        raise ModelNotFoundError(
            f"no model {uri} in {store}: {first} "
            + (
                _why_no_alias(client, name, alias)
                or "(train one with `dealscore train`, or pass --model)"
            )
        ) from exc
    except ImportError as exc:  # an artifact store whose client is not installed (s3://: boto3)
        raise ModelNotFoundError(
            f"cannot load model {uri}: {exc} (install the client of that artifact store, e.g. "
            "pip install boto3 for s3://)"
        ) from exc
    except OSError as exc:
        raise ModelNotFoundError(f"cannot load model {uri}: {exc}") from exc
    except Exception as exc:  # a model MLflow cannot load at all: say which and why
        raise ModelNotFoundError(
            f"cannot load model {uri}: {exc.__class__.__name__}: {exc}"
        ) from exc
    try:
        bundle = load_bundle(model)
    except OutdatedModelError as exc:
        raise ModelNotFoundError(f"cannot score with {uri}: {exc}") from exc
    except (TypeError, AttributeError) as exc:
        raise ModelNotFoundError(
            f"{uri} is not a dealscore model (a pyfunc without dealscore's bundle): {exc}"
        ) from exc
    run_id = run_id or bundle.metadata.get("run_id", "")
    return LoadedModel(bundle, name, version or f"run-{run_id[:8]}", run_id, alias)
