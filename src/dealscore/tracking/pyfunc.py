"""The MLflow pyfunc model: calibrated win probabilities from a feature frame.

The `mlflow.lightgbm` flavour's pyfunc returns 0/1 labels, so dealscore logs its own
`PythonModel`. It is logged "from code" (`pyfunc_entry.py`) with one joblib artifact, the
`ModelBundle`: the fitted estimator plus the `FeatureState` scoring needs to rebuild the same
features (stage order, ICP rules), so a scorer needs nothing but the model URI.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import MISSING, fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import joblib
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PyFuncModel, PythonModel, PythonModelContext
from mlflow.types import ColSpec, Schema

# Re-exported: bundles pickled before it moved name dealscore.tracking.pyfunc.ModelBundle.
from dealscore.model.bundle import ModelBundle

BUNDLE_ARTIFACT = "bundle"
# The SHA-256 of a logged model's files (model_digest), kept in the tracking store: on the
# training run and on the registered version.
DIGEST_TAG = "dealscore.model_sha256"
# What MLflow itself writes into a model's folder after it was logged (registry loads).
NOT_DIGESTED = frozenset({"registered_model_meta"})
PROBABILITY = "win_probability"
ENTRY_SCRIPT = Path(__file__).with_name("pyfunc_entry.py")
PACKAGE_DIR = Path(__file__).resolve().parents[1]

# What the model needs at load time, pinned to the versions it was trained with. Listed
# explicitly: letting MLflow infer them re-imports the model and costs seconds per run.
RUNTIME_DISTRIBUTIONS = (
    "numpy",
    "pandas",
    "pandera",
    "pyarrow",
    "scikit-learn",
    "lightgbm",
    "joblib",
    "pyyaml",
    "sqlalchemy",
    "typer",
)


class BundleFileError(Exception):
    """The model's bundle file is missing, or cannot be unpickled (damaged, or not dealscore's)."""

    def __init__(self, path: str, missing: bool, cause: str) -> None:
        super().__init__(f"{path}: {cause}")
        self.path, self.missing, self.cause = path, missing, cause


class DealScoreModel(PythonModel):
    """pyfunc wrapper: `predict(features)` returns a `win_probability` column."""

    def __init__(self) -> None:
        self.bundle: ModelBundle | None = None

    def load_context(self, context: PythonModelContext) -> None:
        path = context.artifacts[BUNDLE_ARTIFACT]
        if not Path(path).is_file():
            raise BundleFileError(path, True, "no such file")
        try:
            self.bundle = joblib.load(path)
        except Exception as exc:  # whatever unpickling a damaged file raises: EOFError, KeyError
            raise BundleFileError(path, False, f"{exc.__class__.__name__}: {exc}"[:200]) from exc

    def predict(
        self, context: object, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        if self.bundle is None:
            raise RuntimeError("the dealscore model was not loaded (load_context not called)")
        return pd.DataFrame(
            {PROBABILITY: self.bundle.predict(pd.DataFrame(model_input).astype(float))},
            index=model_input.index,
        )


def signature(feature_names: list[str]) -> ModelSignature:
    """Every feature a double, optional (NaN means missing); one probability out."""
    return ModelSignature(
        inputs=Schema([ColSpec("double", name, required=False) for name in feature_names]),
        outputs=Schema([ColSpec("double", PROBABILITY)]),
    )


def pip_requirements() -> list[str]:
    """The runtime dependencies pinned to what is installed (mlflow adds itself)."""
    pins = []
    for dist in RUNTIME_DISTRIBUTIONS:
        try:
            pins.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return pins


def model_digest(folder: Path) -> str:
    """SHA-256 over every file of a logged model, path and bytes, in path order: the bundle,
    MLmodel, the entry script and the code MLflow puts on the path as it loads the model. A
    file changed, added or removed changes it."""
    return folder_digest(folder, NOT_DIGESTED.__contains__)


def folder_digest(folder: Path, skip: Callable[[str], bool]) -> str:
    """SHA-256 over the files of `folder`, path and bytes, in path order; a file whose path
    (relative, with /) `skip` holds for is left out."""
    digest = hashlib.sha256()
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    for name in sorted(name for name in files if not skip(name)):
        with open(files[name], "rb") as handle:
            content = hashlib.file_digest(handle, "sha256").hexdigest()
        digest.update(f"{name}\0{content}\n".encode())
    return digest.hexdigest()


def save_bundle(bundle: ModelBundle, folder: Path) -> Path:
    path = folder / "bundle.joblib"
    joblib.dump(bundle, path)
    return path


class OutdatedModelError(ValueError):
    """A dealscore model this version cannot score with."""


def load_bundle(model: PyFuncModel) -> ModelBundle:
    """The `ModelBundle` inside a loaded dealscore pyfunc model."""
    inner = model.unwrap_python_model()
    bundle = getattr(inner, "bundle", None)
    if not isinstance(bundle, ModelBundle):
        raise TypeError(f"a {type(inner).__name__} pyfunc, not a dealscore model")
    if not hasattr(bundle.estimator, "scorer_"):
        raise OutdatedModelError(
            "it was trained by an older dealscore, before the model ladder; retrain it with "
            "`dealscore train`"
        )
    # A bundle pickled by an older dealscore lacks the fields added since: give their defaults.
    for spec in fields(ModelBundle):
        if spec.name not in vars(bundle):
            if spec.default_factory is not MISSING:
                setattr(bundle, spec.name, spec.default_factory())
            elif spec.default is not MISSING:
                setattr(bundle, spec.name, spec.default)
    return bundle
