"""A registered model whose files are gone, damaged or changed: one line saying which, before
any of its code runs where the registry recorded what its files were."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import joblib
import mlflow
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.tracking.models import load_model
from dealscore.tracking.pyfunc import DIGEST_TAG, model_digest

Register = Callable[..., tuple[str, Path]]


@pytest.fixture(scope="session")
def copies_store(tmp_path_factory) -> str:
    """A tracking store of its own for copies of the champion a test may damage."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('copies') / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_registered_models()  # creates the store, once
    return uri


@pytest.fixture
def registered_copy(model_store, copies_store, tmp_path) -> Register:
    """Registers a copy of the trained champion's files, with its version's tags, as the
    champion of a new name in `copies_store`; returns the name and the copy's folder. Without
    `digest`, as registered before dealscore recorded one."""

    def register(digest: bool = True) -> tuple[str, Path]:
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
        tags = {k: v for k, v in champion.tags.items() if digest or k != DIGEST_TAG}
        version = client.create_model_version(name, str(folder), tags=tags).version
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
    # given a model registered before digests were recorded, its bundle file cut short or
    # overwritten since
    name, folder = registered_copy(digest=False)
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


class _Planted:
    """A pickle that, when loaded, creates a file: what a tampered model file could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_training_records_a_digest_of_the_model_files_in_the_tracking_store(model_store):
    # given the champion train registered
    client = mlflow.MlflowClient(model_store)
    champion = client.get_model_version_by_alias("dealscore", "champion")
    folder = Path(client.get_model_version_download_uri("dealscore", champion.version))
    # then its version and its run hold the SHA-256 of its files, as they are in the store
    assert champion.tags[DIGEST_TAG] == model_digest(folder)
    assert client.get_run(champion.run_id).data.tags[DIGEST_TAG] == model_digest(folder)
    # and one changed byte anywhere in them changes it
    code = folder / "pyfunc_entry.py"
    text = code.read_bytes()
    try:
        code.write_bytes(text + b"#")
        assert model_digest(folder) != champion.tags[DIGEST_TAG]
    finally:
        code.write_bytes(text)


def test_a_model_file_changed_after_training_is_refused_before_any_of_it_runs(
    crm, copies_store, registered_copy, tmp_path
):
    # given a registered champion whose bundle file was replaced after training with a pickle
    # that creates a file as it is loaded
    name, folder = registered_copy()
    ran = tmp_path / "planted-code-ran"
    joblib.dump(_Planted(ran), folder / "artifacts" / "bundle.joblib")
    # when it scores, by alias or by version
    for model in (f"models:/{name}@champion", f"models:/{name}/1"):
        code, output, said = score(crm, model, copies_store, tmp_path / "out")
        # then it is refused in one line, and nothing of it ran
        assert code == 2, output
        assert f"the model files of model {name} v1" in said
        assert "do not match the digest recorded when it was trained" in said
        assert "refusing to load them" in said and "Traceback" not in output
        assert not ran.exists()
    # while the same folder named by path is loaded: the user vouches for it (docs/scoring.md)
    code, output, said = score(crm, str(folder), copies_store, tmp_path / "out")
    assert code == 2 and "is not a dealscore model" in said and ran.exists()


def test_a_model_registered_before_digests_loads_with_a_note(copies_store, registered_copy):
    # given a model registered before dealscore recorded digests
    name, _ = registered_copy(digest=False)
    # when it is loaded, then it loads, saying its files were not checked
    loaded = load_model(f"models:/{name}@champion", copies_store)
    assert loaded.version == "1" and "were not checked against a digest" in loaded.note
    # and one with a digest that matches loads without a note
    checked, _ = registered_copy()
    assert load_model(f"models:/{checked}@champion", copies_store).note == ""
