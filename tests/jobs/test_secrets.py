"""No password passed in any URL form the CLI accepts reaches an output, a log or MLflow."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.io import read_export
from dealscore.jobs.train import run_train
from dealscore.pipeline.training import TrainSettings

SECRET = "s3cr3tPW"  # the test server trusts loopback, so any password connects


SLASHED = "Sl/ash:9#9"  # a password SQLAlchemy and libpq accept raw: "/", ":" and "#"
ENCODED = "Pc%40nt%2Fw0rd"  # "Pc@nt/w0rd", percent-encoded as a URL must carry an "@"


def _urls(postgres: str) -> dict[str, str]:
    """The same server as a SQLAlchemy URL with a password, with one as a query parameter, with
    one holding "/", ":" and "#", and as a JDBC URL with one."""
    host = postgres.split("@", 1)[1]  # 127.0.0.1:PORT/postgres
    return {
        "sqlalchemy": f"postgresql+psycopg://dealscore:{SECRET}@{host}",
        "query": f"postgresql+psycopg://dealscore@{host}?password={SECRET}",
        "slashed": f"postgresql+psycopg://dealscore:{SLASHED}@{host}",
        "encoded": f"postgresql+psycopg://dealscore:{ENCODED}@{host}",
        "jdbc": f"jdbc:postgresql://{host}?user=dealscore&password={SECRET}",
    }


def _mlflow_text(store: str) -> str:
    """Every parameter, tag and metric key of every run in a store, as one text."""
    client = mlflow.MlflowClient(store)
    texts = []
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            texts += [str(run.data.params), str(run.data.tags), str(run.data.metrics)]
    return "\n".join(texts)


def _secrets(form: str) -> tuple[str, ...]:
    """What must not show for a form: the password, its part after a "/", and for the encoded
    one both its spellings."""
    if form == "slashed":
        return SLASHED, SLASHED.split("/")[-1]
    if form == "encoded":
        return ENCODED, "Pc@nt", "w0rd"
    return (SECRET,)


@pytest.mark.parametrize("form", ["sqlalchemy", "query", "slashed", "encoded", "jdbc"])
def test_a_destination_password_is_in_no_output_and_no_mlflow_run(postgres, crm, model_store, form):
    # when the nightly job scores into the database, tracked in MLflow
    out = _urls(postgres)[form]
    result = CliRunner().invoke(
        app,
        ["score", "--data", str(crm), "--out", out, "--tracking-uri", model_store]
        + ["--model", "models:/dealscore@champion"],
    )
    # then it worked, and the password is nowhere: output, errors, run parameters and tags
    assert result.exit_code == 0, result.output
    assert "written to postgresql" in result.output
    for part in _secrets(form):  # not even the part after a "/"
        assert part not in result.output
        assert part not in _mlflow_text(model_store)


@pytest.mark.parametrize("form", ["slashed", "encoded"])
def test_a_source_password_is_in_nothing_a_training_run_records(
    postgres, pg_database, crm, tmp_path, form
):
    # given the CRM export in a PostgreSQL database reached with a password
    plain = pg_database(f"crm_{form}")
    engine = sa.create_engine(plain)
    for name, frame in read_export(crm).tables.present():
        frame.to_sql(name, engine, index=False)
    engine.dispose()
    password = SLASHED if form == "slashed" else ENCODED
    source = plain.replace("dealscore@", f"dealscore:{password}@", 1)
    # when a tracked training run reads it and registers its model
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    said: list[str] = []
    settings = TrainSettings(
        icp="",
        forward_dates=0,
        ladder=("base_rate", "logistic_regression"),
        tracking_uri=store,
        registered_model="secrets",
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        result = run_train(source, settings, progress=said.append)
    assert result.tracking is not None and result.tracking.version == "1"
    # then the password is in none of what the run keeps: params, tags, the model version's
    # tags, the dataset's source, the artifacts (the model card among them), the progress lines
    client = mlflow.MlflowClient(store)
    run = client.get_run(result.tracking.run_id)
    version = client.get_model_version("secrets", "1")
    artifacts = [
        path.read_text(errors="replace")
        for path in Path(
            mlflow.artifacts.download_artifacts(run_id=run.info.run_id, tracking_uri=store)
        ).rglob("*")
        if path.is_file() and path.suffix in {".md", ".json", ".txt", ".yaml", ".html", ""}
    ]
    assert any("dealscore" in text for text in artifacts)  # the card is among them
    recorded = [
        str(run.data.params),
        str(run.data.tags),
        str(version.tags),
        str([d.dataset.source for d in run.inputs.dataset_inputs]),
        *artifacts,
        *said,
    ]
    for part in _secrets(form):
        assert not [text for text in recorded if part in text], part


def test_a_source_password_is_in_no_error_or_progress_line(postgres, crm, model_store, tmp_path):
    url = _urls(postgres)["sqlalchemy"]
    unreachable = url.replace(url.split("@", 1)[1].split("/")[0], "127.0.0.1:9")
    cases = [
        ["validate", url],  # reachable, but holds no CRM tables
        ["validate", unreachable],  # cannot connect
        ["validate", f"nosuchdb+driver://u:{SECRET}@db/crm"],  # no such driver
        ["ingest", url, "--out", str(tmp_path / "out")],
        ["train", "--data", unreachable, "--no-track"],
        ["score", "--data", str(crm), "--out", f"nosuchdb://u:{SECRET}@db/x"]
        + ["--tracking-uri", model_store, "--model", "models:/dealscore@champion"],
    ]
    for args in cases:
        result = CliRunner().invoke(app, args)
        # then each fails with one clear line, and no password
        assert result.exit_code != 0, args
        assert "Traceback" not in result.output, result.output
        assert SECRET not in result.output, (args, result.output)
        assert "***" in result.output or "no opportunities table" in result.output, result.output


def test_a_raw_at_sign_in_a_password_is_one_line_showing_no_part_of_it(crm, model_store):
    # given a destination whose password holds a raw "@" (the driver reads part of it as host)
    out = "postgresql+psycopg://scorer:pa@ss99word@127.0.0.1:9/sales"
    # when scoring into it
    result = CliRunner().invoke(
        app,
        ["score", "--data", str(crm), "--out", out, "--tracking-uri", model_store]
        + ["--model", "models:/dealscore@champion"],
    )
    # then it fails at once with what to do, and neither half of the password shows
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "percent-encode" in result.output
    assert "pa@" not in result.output and "ss99word" not in result.output
