"""No password passed in any URL form the CLI accepts reaches an output, a log or MLflow."""

from __future__ import annotations

import mlflow
import pytest
from typer.testing import CliRunner

from dealscore.cli import app

SECRET = "s3cr3tPW"  # the test server trusts loopback, so any password connects


SLASHED = "Sl/ash:9#9"  # a password SQLAlchemy and libpq accept raw: "/", ":" and "#"


def _urls(postgres: str) -> dict[str, str]:
    """The same server as a SQLAlchemy URL with a password, with one as a query parameter, with
    one holding "/", ":" and "#", and as a JDBC URL with one."""
    host = postgres.split("@", 1)[1]  # 127.0.0.1:PORT/postgres
    return {
        "sqlalchemy": f"postgresql+psycopg://dealscore:{SECRET}@{host}",
        "query": f"postgresql+psycopg://dealscore@{host}?password={SECRET}",
        "slashed": f"postgresql+psycopg://dealscore:{SLASHED}@{host}",
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


@pytest.mark.parametrize("form", ["sqlalchemy", "query", "slashed", "jdbc"])
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
    secret = SLASHED if form == "slashed" else SECRET
    for part in (secret, secret.split("/")[-1]):  # not even the part after the "/"
        assert part not in result.output
        assert part not in _mlflow_text(model_store)


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
