"""A registered model whose files are gone, damaged or changed: one line saying which, before
any of its code runs where the registry recorded what its files were."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from dealscore.cli import app

Register = Callable[[], tuple[str, Path]]


@pytest.fixture(scope="session")
def copies_store(tmp_path_factory) -> str:
    """A tracking store of its own for copies of the champion a test may damage."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('copies') / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_registered_models()  # creates the store, once
    return uri


@pytest.fixture
def registered_copy(model_store, copies_store, tmp_path) -> Register:
    """Registers a copy of the trained champion's files, with its version's tags, as the
    champion of a new name in `copies_store`; returns the name and the copy's folder."""

    def register() -> tuple[str, Path]:
        source = mlflow.MlflowClient(model_store)
        champion = source.get_model_version_by_alias("dealscore", "champion")
        folder = tmp_path / f"model-{uuid.uuid4().hex[:6]}"
        shutil.copytree(
            source.get_model_version_download_uri("dealscore", champion.version),
            folder,
            ignore=shutil.ignore_patterns("registered_model_meta"),
        )
        name = f"copied-{uuid.uuid4().hex[:8]}"
        client = mlflow.MlflowClient(copies_store)
        client.create_registered_model(name)
        version = client.create_model_version(name, str(folder), tags=champion.tags).version
        client.set_registered_model_alias(name, "champion", version)
        return name, folder

    return register


def score(crm: Path, model: str, store: str, out: Path) -> tuple[int, str, str]:
    """(exit code, the whole output, its last line) of `dealscore score` with that model."""
    result = CliRunner().invoke(
        app,
        ["score", "--data", str(crm), "--model", model, "--tracking-uri", store]
        + ["--out", str(out)],
    )
    return result.exit_code, result.output, result.output.strip().splitlines()[-1]


def test_a_champion_whose_files_are_gone_says_so_and_where(
    crm, copies_store, registered_copy, tmp_path
):
    # given a champion whose files were deleted from the artifact store
    name, folder = registered_copy()
    shutil.rmtree(folder)
    # when it scores, then one line says the files are missing and where they were looked for
    code, output, said = score(crm, f"models:/{name}@champion", copies_store, tmp_path / "out")
    assert code == 2, output
    assert f"the files of model {name} v1 (champion) are missing from the artifact store" in said
    assert str(folder) in said
    # not that it is not champion (it is), nor a version to use instead (it fails the same way)
    assert "not champion" not in output and "To use it anyway" not in output
    assert "Traceback" not in output and not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["cut short", "not a pickle"])
def test_a_damaged_model_file_is_one_line_naming_it(
    damage, crm, copies_store, registered_copy, tmp_path
):
    # given a registered model whose bundle file was cut short or overwritten
    name, folder = registered_copy()
    bundle = folder / "artifacts" / "bundle.joblib"
    if damage == "cut short":
        bundle.write_bytes(bundle.read_bytes()[:2000])
    else:
        bundle.write_bytes(b"\x80\x04\x95\x9a" + b"\x00" * 64)
    # when it scores, by the registry or as a folder, then one line says the file is damaged
    for model in (f"models:/{name}/1", str(folder)):
        code, output, said = score(crm, model, copies_store, tmp_path / "out")
        assert code == 2, output
        assert "bundle.joblib" in said and "is damaged or not a dealscore model" in said, said
        assert "Traceback" not in output
