"""`dealscore nightly`: score, monitor, and retrain when the champion is due, once per export."""

from __future__ import annotations

import mlflow
import pandas as pd
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.features.asof import tables_as_of
from dealscore.io import read_export, write_tables
from dealscore.jobs.train import run_train
from dealscore.pipeline.training import TrainSettings
from dealscore.synthetic import GeneratorSettings, generate_crm

EXPORT = pd.Timestamp("2026-06-01", tz="UTC")
NAME = "dealscore-nightly-test"
QUICK = TrainSettings(
    n_estimators=60,
    learning_rate=0.1,
    icp="",
    forward_dates=0,
    ladder=("lightgbm",),
    max_forward_ece=0.1,  # a small world: the gate is not what this test is about
)


def test_an_old_champion_gets_a_challenger_once_and_the_gate_decides(tmp_path):
    # given a small CRM, and a champion trained on its export as it stood five months ago
    crm = tmp_path / "crm"
    world = GeneratorSettings(deals=800, years=1.5, seed=5, export_date=EXPORT)
    write_tables(generate_crm(world).tables, crm)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    old = tmp_path / "old"
    write_tables(tables_as_of(read_export(crm).tables, EXPORT - pd.Timedelta(days=150)), old)
    settings = QUICK.__class__(
        **{**QUICK.__dict__, "tracking_uri": store, "registered_model": NAME}
    )
    run_train(old, settings)
    config = tmp_path / "train.toml"
    config.write_text(
        'n_estimators = 60\nicp = ""\nforward_dates = 0\nladder = ["lightgbm"]\nmax_forward_ece = 0.1\n'
    )
    command = [
        "nightly",
        "--data",
        str(crm),
        "--out",
        str(tmp_path / "scores"),
        "--model",
        f"models:/{NAME}@champion",
        "--tracking-uri",
        store,
        "--train-config",
        str(config),
    ]
    # when the nightly job runs on today's export
    first = CliRunner().invoke(app, command)
    # then it scores, says why a challenger is due, trains one and says what the gate decided
    assert first.exit_code == 0, first.output
    assert "open deals" in first.output and "scores written so far" in first.output
    assert "retraining due: the champion learned from data 15" in first.output
    last = first.output.strip().splitlines()[-1]
    assert last.startswith(("challenger v2 promoted over v1", "champion v1 kept: challenger v2"))
    client = mlflow.MlflowClient(store)
    assert len(client.search_model_versions(f"name='{NAME}'")) == 2
    # and when it is run again on the same export, nothing is trained twice: a promoted
    # challenger is not due, a refused one is not trained again
    second = CliRunner().invoke(app, command)
    assert second.exit_code == 0, second.output
    again = second.output.strip().splitlines()[-1]
    if last.startswith("challenger v2 promoted"):
        assert again.startswith(f"model {NAME} v2 (champion) kept: no retraining due"), again
    else:
        assert "challenger v2 was already trained on this export" in again, again
    assert len(client.search_model_versions(f"name='{NAME}'")) == 2
    # and each night is a run with the decision
    runs = mlflow.search_runs(experiment_names=["dealscore-nightly"], output_format="list")
    assert len(runs) == 2 and all("dealscore.decision" in r.data.tags for r in runs)
