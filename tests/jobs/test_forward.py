"""The forward test on a CRM whose losses are closed months after their last touch (fast wins,
slow losses): training rows are the nightly scorer's population, so it stays calibrated."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.features.asof import last_event
from dealscore.io import read_valid
from dealscore.jobs.generate import run_generate
from dealscore.pipeline.forward import POOLED, ForwardTest
from dealscore.pipeline.training import (
    TrainSettings,
    cohort_warning,
    run_forward,
    training_rows,
)
from dealscore.synthetic import GeneratorSettings

RECIPE = TrainSettings(
    n_estimators=300,
    learning_rate=0.08,
    icp="",
    track=False,
    forward_dates=2,
    in_quarter_model=False,
    ladder=("base_rate", "logistic_regression"),  # the grid is under test, not the ladder
)


@pytest.fixture(scope="module")
def slow_losses(tmp_path_factory):
    out = tmp_path_factory.mktemp("slow")
    settings = GeneratorSettings(
        deals=4000,
        seed=5,
        export_date=pd.Timestamp("2026-06-01", tz="UTC"),
        loss_close_lag_days=180.0,
    )
    run_generate(settings, out, progress=lambda _: None)
    return out


def test_grid_snapshots_stay_calibrated_when_losses_close_late(slow_losses):
    # given a CRM where losses close months after wins would have
    tables = read_valid(slow_losses, None)
    # when the recipe is replayed at two past dates
    forward = run_forward(tables, RECIPE)
    # then its training rows do not look like fast wins: the newest deals are not over-won
    rows = training_rows(tables, RECIPE).rows
    assert not cohort_warning(rows, 1.5)
    # and on the deals really open at those dates it predicts about what happened
    pooled = forward.pooled()
    assert abs(pooled["mean_predicted"] - pooled["actual"]) < 0.2 * pooled["actual"]
    assert pooled["ece"] < 0.06
    # and every forward label is read within the model's window, after the date
    rows = forward.rows
    assert (
        rows["as_of"] + pd.to_timedelta(rows["horizon_days"], unit="D") <= last_event(tables)
    ).all()
    # and every rung of the ladder was replayed beside the model on the same deals
    assert {"base_rate", "logistic_regression"} <= set(forward.table["contender"])
    assert set(forward.rungs) == {f"{d:%Y-%m-%d}" for d in rows["as_of"].unique()}


def test_evaluate_cli_prints_the_forward_test_and_writes_the_deals(slow_losses, tmp_path):
    out = tmp_path / "forward.csv"
    result = CliRunner().invoke(
        app,
        ["evaluate", "--data", str(slow_losses), "--as-of", "2025-06-01", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "pooled" in result.output and "mean predicted" in result.output
    written = pd.read_csv(out)
    assert {"opportunity_id", "label", "model", "horizon_days"} <= set(written.columns)
    assert (pd.to_datetime(written["as_of"]) == pd.Timestamp("2025-06-01", tz="UTC")).all()


def test_a_date_whose_outcomes_are_not_known_yet_is_refused(slow_losses):
    result = CliRunner().invoke(
        app, ["evaluate", "--data", str(slow_losses), "--as-of", "2026-05-01"]
    )
    assert result.exit_code == 2
    assert "not in the export yet" in result.output


def _forward(losses: dict[str, float]) -> ForwardTest:
    """A forward test whose pooled log loss per contender is given."""
    table = pd.DataFrame(
        [
            {"date": POOLED, "contender": name, "log_loss": loss, "roc_auc": 0.7, "ece": 0.02}
            for name, loss in losses.items()
        ]
    )
    return ForwardTest(pd.DataFrame(), table)


def test_a_model_worse_than_a_simpler_rung_forward_is_named_as_such():
    # given a forward test where the CRM's own rung beat the LightGBM model that scores
    forward = _forward({"model": 0.52, "base_rate": 0.66, "crm_rates": 0.50, "lightgbm": 0.52})
    # then the gate's reason names the simpler rung and both figures
    why = forward.worse_than_simpler("lightgbm", "log_loss", 0.002)
    assert "worse than the simpler crm_rates rung on the forward test" in why
    assert "0.5200 against 0.5000" in why
    # and within the tolerance, or against only richer rungs, nothing is said
    assert not forward.worse_than_simpler("lightgbm", "log_loss", 0.05)
    assert not forward.worse_than_simpler("base_rate", "log_loss", 0.002)
