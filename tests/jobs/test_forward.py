"""The forward test, and why training rows must be the nightly scorer's population: a CRM whose
losses are closed months after their last touch (fast wins, slow losses)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.features.asof import last_event
from dealscore.io import read_valid
from dealscore.jobs.generate import run_generate
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


def test_resolved_only_snapshots_overstate_wins_and_grid_snapshots_do_not(slow_losses):
    # given a CRM where losses close months after wins would have
    tables = read_valid(slow_losses, None)
    old = replace(RECIPE, snapshot_scheme="per_deal")
    # when each recipe is replayed at two past dates
    forward = {name: run_forward(tables, s) for name, s in (("old", old), ("grid", RECIPE))}
    # then the old scheme's newest deals are nearly all wins, and the warning says so
    rows = {
        name: pd.concat(training_rows(tables, s).parts.values())
        for name, s in (("old", old), ("grid", RECIPE))
    }
    assert cohort_warning(rows["old"], 1.5)
    assert not cohort_warning(rows["grid"], 1.5)
    # and on the deals really open at those dates it promises far more wins than happened
    old_p, grid_p = forward["old"].pooled(), forward["grid"].pooled()
    assert old_p["mean_predicted"] > 1.5 * old_p["actual"]
    # while the grid recipe predicts about what happened, and is better calibrated
    assert abs(grid_p["mean_predicted"] - grid_p["actual"]) < 0.35 * grid_p["actual"]
    assert grid_p["ece"] < old_p["ece"] / 2
    # and every forward label is read within the model's window, after the date
    rows = forward["grid"].rows
    assert (
        rows["as_of"] + pd.to_timedelta(rows["horizon_days"], unit="D") <= last_event(tables)
    ).all()


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
