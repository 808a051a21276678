"""Where runs go, what is logged about the source, and the champion rule."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from dealscore.io.secrets import redact
from dealscore.tracking.models import require_store
from dealscore.tracking.registry import decide
from dealscore.tracking.store import TrackingError, tracking_uri, use_store


def test_an_explicit_uri_wins_then_the_environment_then_a_local_sqlite(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking_uri("sqlite:///x.db") == "sqlite:///x.db"
    assert tracking_uri() == "http://tracking:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking_uri(folder=tmp_path) == f"sqlite:///{Path(tmp_path).resolve() / 'mlflow.db'}"


def test_a_database_password_is_never_logged():
    assert redact("postgresql://crm:s3cret@db:5432/crm") == "postgresql://crm:***@db:5432/crm"
    assert redact("data/exports/2026-11") == "data/exports/2026-11"
    jdbc = "jdbc:postgresql://db:5432/crm?user=crm&password=s3cret&ssl=true"
    assert redact(jdbc) == "jdbc:postgresql://db:5432/crm?user=crm&password=***&ssl=true"
    message = "cannot reach mysql+pymysql://root:s3cret@db/crm nor http://u:s3cret@mlflow:5000"
    assert "s3cret" not in redact(message) and redact(message).count("***") == 2
    # a password holding what the driver accepts raw ("/", ":", "#"), or given as a parameter
    slashed = "postgresql+psycopg://u:Sl/ash:9#9@db/crm is unreachable"
    assert redact(slashed) == "postgresql+psycopg://u:***@db/crm is unreachable"
    query = "postgresql+psycopg://scorer@db:5432/sales?password=s3cret&sslmode=require"
    assert redact(query) == "postgresql+psycopg://scorer@db:5432/sales?password=***&sslmode=require"
    assert redact("http://mlflow:5000/#/experiments") == "http://mlflow:5000/#/experiments"
    # a raw "@" in it (the driver then takes part of it for the host): no part of it shows
    assert "ss" not in redact("postgresql+psycopg://u:p@ss@db/crm").removesuffix("db/crm")


def test_not_worse_within_the_tolerance_is_promoted():
    assert decide("log_loss", 0.30, None, 0.002, "").promote
    assert decide("log_loss", 0.301, 0.300, 0.002, "4").promote
    worse = decide("log_loss", 0.31, 0.30, 0.002, "4")
    assert not worse.promote
    assert "v4" in worse.reason and "0.3100" in worse.reason


def test_refuse_names_what_cannot_be_measured_or_is_not_calibrated():
    from dealscore.model.metrics import evaluate
    from dealscore.tracking.registry import refuse

    both = evaluate(np.array([0, 1, 0, 1]), np.array([0.2, 0.7, 0.4, 0.6]))
    one_class = evaluate(np.zeros(4), np.array([0.2, 0.7, 0.4, 0.6]))
    assert refuse(both, 0.02, 0.05, "the forward test") == ""
    why = refuse(one_class, 0.02, 0.05, "the forward test")
    assert "cannot be measured" in why and "one class (win rate 0%)" in why
    why = refuse(both, 0.08, 0.05, "the forward test")
    assert "ECE 0.0800 on the forward test" in why and "max_forward_ece" in why
    assert refuse(both, float("nan"), 0.05, "the test slice")  # an unmeasurable ECE is no pass
    # an ECE chance alone often gives on these rows is no reason to refuse; one above it is
    assert refuse(both, 0.08, 0.05, "the forward test", chance=0.09) == ""
    why = refuse(both, 0.12, 0.05, "the forward test", chance=0.09)
    assert "above 0.0900, what chance alone gives there 5% of the time" in why


def test_chance_ece_shrinks_with_rows_and_calibrated_outcomes_stay_under_it():
    from dealscore.model.metrics import chance_ece, expected_calibration_error

    # given probabilities and outcomes drawn from them (a perfectly calibrated model)
    rng = np.random.default_rng(3)
    few, many = rng.random(200), rng.random(20_000)
    # then the ECE chance allows falls with the number of rows
    assert chance_ece(many) < chance_ece(few) / 5
    # and calibrated outcomes stay under it about 95% of the time, miscalibrated ones do not
    under = [
        expected_calibration_error(rng.random(200) < few, few) <= chance_ece(few)
        for _ in range(200)
    ]
    assert 0.9 < np.mean(under) <= 1.0
    assert expected_calibration_error(rng.random(200) < few * 0.6, few) > chance_ece(few)


def test_a_tracking_server_that_does_not_answer_is_one_line_naming_it(monkeypatch):
    # given a server that takes connections and never answers (a hung server, or a proxy)
    monkeypatch.setattr("dealscore.tracking.store.PROBE_SECONDS", 0.5)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        uri = f"http://scorer:s3cret@127.0.0.1:{server.getsockname()[1]}"
        # when a job would log to it, or load a registered model from it
        for reach in (lambda: use_store(uri, "x"), lambda: require_store("models:/m@a", uri)):
            with pytest.raises(TrackingError) as failed:
                reach()
            # then it stops with one line naming the store, its password masked
            message = str(failed.value)
            assert "MLflow tracking store http://scorer:***@127.0.0.1" in message
            assert "does not answer within 0.5 s" in message and "s3cret" not in message
