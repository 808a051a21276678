"""Loading a registered dealscore model: by alias, version or run, with errors that say what is
there (the versions, why none is champion) and never an empty store created on the way.

Loading is done in steps, each with its own one-line error: find the version in the registry
(no such model or alias), fetch its files from the artifact store (missing), check them against
the digest training kept in the tracking store (changed since: refused before anything of them
is unpickled or imported), then load them (damaged, or not a dealscore model)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from dealscore.errors import DealscoreError
from dealscore.model.bundle import LoadedModel
from dealscore.tracking.pyfunc import (
    DIGEST_TAG,
    BundleFileError,
    OutdatedModelError,
    load_bundle,
    model_digest,
)
from dealscore.tracking.store import missing_local_store, probe
from dealscore.tracking.store import tracking_uri as resolve


class ModelNotFoundError(DealscoreError, LookupError):
    """The model URI names no model the tracking store has."""


class ModelFilesError(ModelNotFoundError):
    """The model is registered, but its files are missing or cannot be loaded."""


class UntrustedModelError(ModelFilesError):
    """The model's files are not those it was trained with: they are never loaded."""


def require_store(model: str, store: str) -> None:
    """A registry or run model from a local store that does not exist: say so, before MLflow
    creates the store empty on the way to failing; from a server that does not answer: say
    so in seconds."""
    if not model.startswith(("models:/", "runs:/")):
        return
    if missing := missing_local_store(store):
        raise ModelNotFoundError(
            f"no model {model}: there is no MLflow store at {missing} yet (train one with "
            "`dealscore train`, or pass --tracking-uri)"
        )
    probe(store)  # a server that is down: seconds, not MLflow's minutes of retries


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


def _unreachable(message: str) -> bool:
    return "Max retries exceeded" in message or "Connection" in message


@dataclass(frozen=True)
class _Found:
    """What the registry says a model URI is."""

    name: str = "dealscore"
    version: str = ""  # "" when the URI is not a registered version
    run_id: str = ""
    alias: str = ""
    where: str = ""  # where its files are in the artifact store, when the registry says
    digest: str = ""  # the digest of its files the registered version holds (DIGEST_TAG)

    def label(self, uri: str) -> str:
        """'model dealscore-demo-crm v3 (champion)', or the URI."""
        if not self.version:
            return uri
        return f"model {self.name} v{self.version}" + (f" ({self.alias})" if self.alias else "")


def _find(client: mlflow.MlflowClient, uri: str, store: str) -> _Found:
    """The registered version a `models:/` URI names; nothing to find for other URIs."""
    if not uri.startswith("models:/"):
        return _Found()
    ref = uri.removeprefix("models:/")
    name, alias = ref, ""
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            found = client.get_model_version_by_alias(name, alias)
        elif "/" in ref:
            name, _, number = ref.partition("/")
            found = client.get_model_version(name, number)
        else:  # an MLflow 3 logged model (models:/m-...), loaded as it is, outside the registry
            return _Found()
        where = client.get_model_version_download_uri(name, found.version)
    except MlflowException as exc:
        first = exc.message.splitlines()[0]
        if _unreachable(first):
            raise ModelNotFoundError(f"cannot reach the tracking store {store}: {first}") from exc
        raise ModelNotFoundError(
            f"no model {uri} in {store}: {first} "
            + (
                _why_no_alias(client, name, alias)
                or "(train one with `dealscore train`, or pass --model)"
            )
        ) from exc
    digest = str(found.tags.get(DIGEST_TAG, ""))
    return _Found(name, str(found.version), found.run_id or "", alias, str(where), digest)


def _fetch(uri: str, found: _Found, store: str) -> Path:
    """The model's folder on this machine (downloaded from a remote artifact store), holding
    its MLmodel file; nothing of it is loaded yet."""
    missing = ModelFilesError(
        f"the files of {found.label(uri)} are missing from the artifact store: nothing at "
        f"{found.where or uri} (deleted or moved since it was logged; restore them, or train "
        "again with `dealscore train`)"
    )
    if ":/" not in uri:  # a folder the user names: loaded where it is
        if not Path(uri).is_dir():
            raise ModelNotFoundError(
                f"no model {uri}: no such folder (--model takes models:/NAME@ALIAS, "
                "models:/NAME/VERSION, runs:/RUN_ID/model or a model folder)"
            )
        local = Path(uri)
    else:
        local = _download(uri, found, store, missing)
    if not (local / "MLmodel").is_file():
        if found.version or uri.startswith(("models:/", "runs:/")):
            raise missing
        raise ModelNotFoundError(f"{uri} is not a model: no MLmodel file in {local}")
    return local


def _download(uri: str, found: _Found, store: str, missing: ModelFilesError) -> Path:
    """The model's files from the artifact store (where they are, for a local one)."""
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except MlflowException as exc:
        first = exc.message.splitlines()[0]
        if _unreachable(first):
            raise ModelNotFoundError(f"cannot reach the tracking store {store}: {first}") from exc
        if "No such artifact" in first or (
            found.version and exc.error_code == "RESOURCE_DOES_NOT_EXIST"
        ):
            raise missing from exc
        if found.version:
            raise ModelFilesError(
                f"cannot fetch the files of {found.label(uri)} from the artifact store "
                f"({found.where}): {first}"
            ) from exc
        raise ModelNotFoundError(
            f"no model {uri} in {store}: {first} (train one with `dealscore train`, or pass "
            "--model)"
        ) from exc
    except ImportError as exc:  # an artifact store whose client is not installed (s3://: boto3)
        raise ModelNotFoundError(
            f"cannot load model {uri}: {exc} (install the client of that artifact store, e.g. "
            "pip install boto3 for s3://)"
        ) from exc
    except OSError as exc:
        raise ModelNotFoundError(f"cannot load model {uri}: {exc}") from exc


def _recorded_digest(client: mlflow.MlflowClient, uri: str, found: _Found) -> str | None:
    """The digest training recorded for the model's files in the tracking store: on the
    registered version, else on the run that logged it; None when there is none (logged before
    dealscore recorded one) or the URI is a folder (nothing recorded to check it against)."""
    run_id = found.run_id
    if found.version:
        if found.digest:
            return found.digest
    elif uri.startswith("runs:/"):
        run_id, _, path = uri.removeprefix("runs:/").partition("/")
        if path.strip("/") != "model":  # the digest is of the run's `model`
            return None
    elif uri.startswith("models:/"):  # an MLflow 3 logged model: the run that logged it
        run_id = client.get_logged_model(uri.removeprefix("models:/")).source_run_id or ""
    if not run_id:
        return None
    try:
        tag = client.get_run(run_id).data.tags.get(DIGEST_TAG)
    except MlflowException:  # the run was deleted: nothing recorded to check against
        return None
    return str(tag) if tag else None


def _check(client: mlflow.MlflowClient, uri: str, found: _Found, local: Path) -> str:
    """Refuse files that are not those the model was trained with, before anything of them
    runs; returns a note when there is nothing to check them against."""
    if ":/" not in uri:
        return ""  # a folder the user names: the user vouches for it (docs/scoring.md, Trust)
    if not uri.startswith(("models:/", "runs:/")):
        return (
            f"{uri} was loaded as it is: only models:/ and runs:/ URIs are checked against the "
            "digest recorded at training"
        )
    try:
        expected = _recorded_digest(client, uri, found)
    except MlflowException as exc:
        raise ModelNotFoundError(
            f"cannot read what the tracking store recorded about {found.label(uri)}: "
            f"{exc.message.splitlines()[0]}"
        ) from exc
    label = found.label(uri)
    if expected is None:
        return (
            f"{label} was logged before dealscore recorded a digest of its files, so they were "
            "not checked against a digest; loading it runs its code: retrain it to record one"
        )
    if model_digest(local) != expected:
        raise UntrustedModelError(
            f"the model files of {label} do not match the digest recorded when it was "
            f"trained: refusing to load them (they changed in the artifact store, at "
            f"{found.where or uri}, since; restore them or train again)"
        )
    return ""


def load_model(uri: str, tracking_uri: str = "") -> LoadedModel:
    """The dealscore model behind a `models:/name@alias`, `models:/name/version` or run URI,
    or a model folder."""
    store = resolve(tracking_uri)
    require_store(uri, store)
    mlflow.set_tracking_uri(store)
    client = mlflow.MlflowClient()
    found = _find(client, uri, store)
    local = _fetch(uri, found, store)
    note = _check(client, uri, found, local)
    label = found.label(uri)
    try:
        model = mlflow.pyfunc.load_model(str(local))
    except BundleFileError as exc:
        if exc.missing:
            raise ModelFilesError(
                f"the model file {exc.path} of {label} is missing from the artifact store"
            ) from exc
        raise ModelFilesError(
            f"the model file {exc.path} of {label} is damaged or not a dealscore model "
            f"({exc.cause})"
        ) from exc
    except MlflowException as exc:
        raise ModelNotFoundError(f"cannot load model {uri}: {exc.message.splitlines()[0]}") from exc
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
    run_id = found.run_id or bundle.metadata.get("run_id", "")
    return LoadedModel(
        bundle, found.name, found.version or f"run-{run_id[:8]}", run_id, found.alias, note
    )
