"""Training with MLflow: the run, the pyfunc model and the registry, in a temporary store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.features import FEATURE_NAMES, build_features
from dealscore.features.asof import tables_as_of
from dealscore.io import read_export, write_tables
from dealscore.jobs.train import run_train
from dealscore.model.metrics import evaluate
from dealscore.pipeline.training import TrainSettings
from dealscore.tracking.pyfunc import PROBABILITY, load_bundle

PROJECT = Path(__file__).resolve().parents[2]
# Tracking is what these tests are about: the quick rungs stand in for the whole ladder.
FAST = TrainSettings(
    n_estimators=150,
    learning_rate=0.1,
    icp="",
    forward_dates=0,
    registered_model="dealscore",
    ladder=("base_rate", "logistic_regression"),
)
# The gate's tests compare win models only: the other models a run fits are left out.
GATE = replace(FAST, in_quarter_model=False, independent_contender=False, outcome_model=False)


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    """A fresh tracking store for one test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # artifacts (mlruns/) land beside the store
    return uri


@pytest.fixture(scope="module")
def trained(crm, tmp_path_factory):
    """One tracked training run in its own store, shared by the read-only tests below."""
    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        result = run_train(crm, replace(FAST, tracking_uri=uri))
    return result, uri


def test_run_logs_settings_metrics_plots_card_and_input(trained, crm):
    # given
    result, uri = trained
    client = mlflow.MlflowClient(uri)
    # when
    run = client.get_run(result.tracking.run_id)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)} | {
        a.path for a in client.list_artifacts(run.info.run_id, "plots")
    }
    # then settings, headline and per-contender metrics are there
    assert run.data.params["learning_rate"] == "0.1"
    assert run.data.params["data_source"] == str(crm)
    model_all = result.comparison.query("contender == 'model' and segment == 'all'").iloc[0]
    assert run.data.metrics["roc_auc"] == pytest.approx(model_all["roc_auc"])
    assert "rep_forecast.late.brier" in run.data.metrics
    assert {
        "plots/reliability.png",
        "plots/roc.png",
        "plots/lift.png",
        "plots/feature_importance.png",
        "model_card.md",
        "feature_catalogue.csv",
        "settings.json",
    } <= artifacts
    card = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="model_card.md", tracking_uri=uri
        )
    ).read_text()
    assert "rep_forecast" in card and "Known limits" in card
    # and both opinions, with and without the reps' calls, and the three outcomes
    assert "model_without_reps" in card and "the reps' own forecasts" in card
    assert "## Three outcomes: won, lost, no decision" in card and "no_decision" in card
    assert "outcomes.model.no_decision.ece" in run.data.metrics
    # and the input is fingerprinted
    (dataset,) = run.inputs.dataset_inputs
    assert len(dataset.dataset.digest) == 16
    assert json.loads(dataset.dataset.source)["tags"]["crm_export"] == str(crm)
    assert run.data.tags.get("mlflow.source.git.commit", "x") != ""


def test_pyfunc_returns_the_calibrated_probabilities(trained, crm):
    # given
    result, uri = trained
    mlflow.set_tracking_uri(uri)
    # when
    model = mlflow.pyfunc.load_model("models:/dealscore@champion")
    out = model.predict(result.test[FEATURE_NAMES])
    # then: probabilities, not labels, exactly the estimator's
    expected = result.model.predict_proba(result.test[FEATURE_NAMES])[:, 1]
    np.testing.assert_allclose(out[PROBABILITY].to_numpy(), expected)
    assert out[PROBABILITY].between(0, 1).all() and out[PROBABILITY].nunique() > 2
    assert [c.name for c in model.metadata.get_input_schema().inputs] == FEATURE_NAMES
    # and it carries the fitted feature state scoring needs
    bundle = load_bundle(model)
    assert bundle.feature_state.stage_order == result.feature_state.stage_order
    # and what scoring needs for reasons and drift
    assert (
        bundle.estimator.rung == result.model.rung
        and bundle.estimator.shift_ == result.model.shift_
    )
    assert set(bundle.reference.edges) == {*FEATURE_NAMES, "win_probability"}


def test_pyfunc_pins_its_requirements(trained):
    _, uri = trained
    mlflow.set_tracking_uri(uri)
    requirements = Path(
        mlflow.pyfunc.get_model_dependencies("models:/dealscore@champion")
    ).read_text()
    assert "lightgbm==" in requirements and "scikit-learn==" in requirements


def test_first_version_is_champion_and_a_worse_one_stays_challenger(crm, store, tmp_path):
    # given a first model, trained on the export as it stood half a year earlier
    older = tmp_path / "older"
    write_tables(tables_as_of(read_export(crm).tables, pd.Timestamp("2025-12-01", tz="UTC")), older)
    first = run_train(older, GATE)
    assert first.tracking.version == "1" and first.tracking.promoted
    # when a worse one (the CRM's own stage and forecast rates only) is trained on today's export
    worse = run_train(crm, replace(GATE, ladder=("crm_rates",)))
    # then it is the challenger only, with the reason on record
    client = mlflow.MlflowClient()
    assert not worse.tracking.promoted and worse.tracking.reason.startswith("worse")
    assert str(client.get_model_version_by_alias("dealscore", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("dealscore", "challenger").version) == "2"
    assert client.get_model_version("dealscore", "2").tags["promotion"] == worse.tracking.reason
    # scored against the champion on the same rows: those of the newest fold it never learned
    # from (dated after its own labelled rows), the champion with its own feature state
    metrics = client.get_run(worse.tracking.run_id).data.metrics
    unseen = worse.test["as_of"] + pd.Timedelta(days=first.horizon_days) > first.window["cutoff"]
    assert metrics["champion.compared_rows"] == unseen.sum() >= 200
    keys = worse.test.loc[unseen, ["opportunity_id", "as_of"]]
    rows = keys.merge(build_features(read_export(crm).tables, keys, first.feature_state))
    expected = evaluate(worse.test.loc[unseen, "label"], first.model.predict_proba(rows)[:, 1])
    assert metrics["champion.log_loss"] == pytest.approx(expected["log_loss"])
    # and an equally good one (same settings) is promoted: not worse within the tolerance
    again = run_train(crm, GATE)
    assert again.tracking.promoted and "not worse" in again.tracking.reason
    assert str(client.get_model_version_by_alias("dealscore", "champion").version) == "3"
    # while a retrain on the very same export has no row the champion did not learn from:
    # the gates decide, and it says so
    same = run_train(crm, GATE)
    assert same.tracking.promoted and "cannot be compared fairly" in same.tracking.reason


def test_an_uncalibrated_challenger_is_never_champion_and_says_why(crm, store):
    # given a calibration limit no model can meet, and no forward test to measure it on
    strict = replace(GATE, max_forward_ece=0.0)
    # when the first model is trained
    result = run_train(crm, strict)
    # then even without a champion it stays the challenger, with the measured reason
    assert not result.tracking.promoted
    assert "not calibrated" in result.tracking.reason
    assert "newest fold (no forward test ran)" in result.tracking.reason
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.MlflowClient().get_model_version_by_alias("dealscore", "champion")


def test_a_challenger_worse_than_the_stage_ladder_forward_is_refused(crm, store, monkeypatch):
    # given a recipe forced to score with a LightGBM that cannot split (every leaf needs more
    # rows than there are) whatever the folds say
    def richest(y, oof, *args, **kwargs):
        return list(oof)[-1], dict.fromkeys(oof, 0.0), "forced for the test"

    monkeypatch.setattr("dealscore.model.ladder.choose", richest)
    stump = replace(
        GATE, forward_dates=2, ladder=("crm_rates", "lightgbm"), min_child_samples=10**6
    )
    # when it is trained, with no champion to beat
    result = run_train(crm, stump)
    # then the forward test shows the CRM's own stage and forecast rates doing better, and the
    # model is not promoted, with that reason on record
    forward = result.forward.pooled()
    assert forward["log_loss"] > result.forward.pooled("crm_rates")["log_loss"] + 0.002
    assert not result.tracking.promoted
    assert "worse than the simpler crm_rates rung on the forward test" in result.tracking.reason
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.MlflowClient().get_model_version_by_alias("dealscore", "champion")


def test_the_forward_test_is_logged_in_metrics_tables_and_card(crm, store):
    # when a run replays its recipe at one past date
    result = run_train(crm, replace(FAST, forward_dates=1))
    # then the pooled figures, the table and the card carry it
    run = mlflow.MlflowClient().get_run(result.tracking.run_id)
    pooled = result.forward.pooled()
    assert run.data.metrics["forward.model.ece"] == pytest.approx(pooled["ece"])
    assert run.data.metrics["forward.model.actual"] == pytest.approx(pooled["actual"])
    assert float(run.data.params["label_horizon_days"]) == result.horizon_days
    folder = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id))
    table = pd.read_csv(folder / "tables" / "forward_test.csv")
    assert set(table["date"]) == {*result.forward.rows["as_of"].dt.strftime("%Y-%m-%d"), "pooled"}
    card = (folder / "model_card.md").read_text()
    assert "## Forward test" in card and f"within {result.horizon_days:g} days" in card


def test_the_registered_champion_scores_as_the_trained_model_with_its_own_features(crm, store):
    # given a champion
    first = run_train(crm, GATE)
    # when it is loaded and scored on the newest fold's rows
    bundle = load_bundle(mlflow.pyfunc.load_model("models:/dealscore@champion"))
    tables = read_export(crm).tables
    keys = first.test[["opportunity_id", "as_of"]]
    rows = keys.merge(build_features(tables, keys, bundle.feature_state))
    # then it reproduces the trained model's probabilities, its recent correction included
    expected = first.model.predict_proba(rows[FEATURE_NAMES])[:, 1]
    np.testing.assert_allclose(bundle.predict(rows), expected, rtol=1e-9)


def test_cli_train_reports_the_run_and_the_alias(crm, store):
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(crm), "--n-estimators", "60", "--heroic-weight", "0.3"]
        + ["--forward-dates", "0"],
    )
    assert result.exit_code == 0, result.output
    # one registered model per CRM, named from the export's folder
    name = f"dealscore-{crm.name}"
    assert f"registered {name} v1 as champion" in result.output
    assert result.output.count(f"registered {name} v1") == 1  # said once, not twice
    assert "mlflow ui --backend-store-uri" in result.output
    run = mlflow.MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("dealscore").experiment_id]
    )[0]
    assert run.data.params["heroic_weight"] == "0.3"
    # the effect of down-weighting, reported on the same (all) test rows
    assert {"heroics.weighted.log_loss", "heroics.unweighted.log_loss"} <= set(run.data.metrics)


def test_unreachable_store_is_a_clear_error_before_training(crm, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(crm),
            "--n-estimators",
            "20",
            "--tracking-uri",
            "http://127.0.0.1:9",  # the discard port: nothing listens
        ],
    )
    assert result.exit_code == 2
    assert "MLflow tracking store http://127.0.0.1:9 is not usable" in result.output
    assert "reading" not in result.output  # it failed before reading or training


@pytest.mark.slow  # run by make test-all (CI)
def test_mlflow_run_train_entry_point_logs_into_its_own_run(crm, tmp_path):
    # given a store whose experiment keeps its artifacts in the temporary folder
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    client.create_experiment("entry", artifact_location=(tmp_path / "artifacts").as_uri())
    config = tmp_path / "fast.toml"
    config.write_text('n_estimators = 40\nlearning_rate = 0.2\nicp = ""\n')
    bin_dir = Path(sys.executable).parent
    env = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")
    }
    env |= {"MLFLOW_TRACKING_URI": uri, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    # when the MLproject entry point runs, offline, in this environment
    done = subprocess.run(
        [
            str(bin_dir / "mlflow"),
            "run",
            str(PROJECT),
            "-e",
            "train",
            "--env-manager",
            "local",
            "--experiment-name",
            "entry",
            "-P",
            f"data={crm}",
            "-P",
            f"config={config}",
        ],
        env=env,
        check=False,  # the return code is asserted with stderr shown
        capture_output=True,
        text=True,
        timeout=600,
    )
    # then it succeeds, and the job's metrics and model are in the run `mlflow run` made
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = client.search_runs([client.get_experiment_by_name("entry").experiment_id])
    assert run.data.params["data"] == str(crm)  # logged by `mlflow run`
    assert run.data.params["data_source"] == str(crm)  # logged by the job, same run
    assert 0.5 < run.data.metrics["roc_auc"] <= 1.0
    name = f"dealscore-{crm.name}"  # the default: one registered model per CRM
    assert client.get_model_version_by_alias(name, "champion").run_id == run.info.run_id


def test_cli_train_names_the_registered_model_it_used(crm, store, tmp_path):
    # given a training config that registers under another name
    config = tmp_path / "acme.toml"
    config.write_text(
        'registered_model = "acme"\nforward_dates = 0\nicp = ""\n'
        'ladder = ["base_rate", "logistic_regression"]\nin_quarter_model = false\n'
        "independent_contender = false\noutcome_model = false\n"
    )
    # when trained, then the summary names that model, not the default
    result = CliRunner().invoke(app, ["train", "--data", str(crm), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "registered acme v1 as champion" in result.output
    assert "registered dealscore" not in result.output


def _without_forecasts(crm: Path, folder: Path) -> Path:
    """Another CRM's export, as far as coverage goes: the same deals without rep forecasts."""
    from dealscore.io import read_export, write_tables

    write_tables(read_export(crm).tables.with_tables(forecasts=None), folder)
    return folder


def test_training_a_second_crm_does_not_replace_the_first_ones_champion(crm, store, tmp_path):
    # given a champion for one CRM, under the default name that follows its export
    default = replace(GATE, registered_model="")
    first = run_train(crm, default)
    assert first.tracking.registered_model == f"dealscore-{crm.name}" and first.tracking.promoted
    # when another CRM's export is trained
    other = run_train(_without_forecasts(crm, tmp_path / "acme"), default)
    # then it gets its own registered model and champion, and the first champion stands
    client = mlflow.MlflowClient()
    assert other.tracking.registered_model == "dealscore-acme" and other.tracking.promoted
    champion = client.get_model_version_by_alias(f"dealscore-{crm.name}", "champion")
    assert champion.run_id == first.tracking.run_id
    assert client.get_model_version("dealscore-acme", "1").tags["dealscore.data"].endswith("acme")


def test_a_challenger_whose_export_fills_other_columns_is_not_promoted(crm, store, tmp_path):
    # given a champion trained on the full export
    run_train(crm, GATE)
    other = _without_forecasts(crm, tmp_path / "other")
    # when a model of an export without forecasts is registered under the same name
    refused = run_train(other, GATE)
    # then it stays the challenger, and the reason names the columns and the way out
    assert not refused.tracking.promoted
    assert "lacks" in refused.tracking.reason and "forecasts." in refused.tracking.reason
    assert "allow_coverage_change" in refused.tracking.reason
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("dealscore", "champion").version) == "1"
    # and with the explicit flag the usual comparison decides, on the same rows
    allowed = run_train(other, replace(GATE, allow_coverage_change=True))
    assert "lacks" not in allowed.tracking.reason
    assert allowed.tracking.promoted or allowed.tracking.reason.startswith("worse")
