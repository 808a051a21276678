"""`dealscore monitor` as a user runs it: scores written on past nights, judged by the export."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.features.asof import export_time, last_event
from dealscore.io import read_export

MODEL = "models:/dealscore@champion"


def _score(crm, model_store, out, as_of: str) -> None:
    result = CliRunner().invoke(
        app,
        ["score", "--data", str(crm), "--as-of", as_of, "--out", out]
        + ["--tracking-uri", model_store, "--model", MODEL],
    )
    assert result.exit_code == 0, result.output


def test_monitor_judges_the_nights_whose_window_ended_and_writes_one_row_per_group(
    crm, model_store, tmp_path
):
    # given scores written on two nights: one long enough ago for its window to have ended
    scores = str(tmp_path / "scores")
    for night in ("2025-12-01", "2026-05-20"):
        _score(crm, model_store, scores, night)
    # when the monitor reads them against the export
    table_file = tmp_path / "monitor.csv"
    result = CliRunner().invoke(
        app,
        ["monitor", "--data", str(crm), "--scores", scores, "--model-name", "dealscore"]
        + ["--out", str(table_file)],
    )
    # then it says how many were judged and how many wait, and writes the table
    assert result.exit_code == 0, result.output
    table = pd.read_csv(table_file, dtype={"group": str})
    assert {"group", "rows", "pending", "mean_predicted", "won", "ece", "brier", "roc_auc"} <= set(
        table.columns
    )
    written = pd.concat(
        [pd.read_parquet(p) for p in (tmp_path / "scores" / "scores").glob("*.parquet")]
    )
    tables = read_export(crm).tables
    now = export_time(last_event(tables))
    ended = written["as_of"] + pd.to_timedelta(written["horizon_days"], unit="D") <= now
    pooled = table[table["group"] == "pooled"].iloc[0]
    assert pooled["rows"] == ended.sum() > 0 and pooled["pending"] == (~ended).sum() > 0
    nights = table[table["by"] == "as_of"].set_index("group")
    assert nights.loc["2026-05-20", "rows"] == 0  # its window is still open: pending, not lost
    assert set(table["by"]) == {"pooled", "model_version", "band", "month", "as_of"}
    assert f"{ended.sum():,} elapsed" in result.output and "by band" in result.output
    # and asked for the export's own model's scores (another name), it names the models there
    other = CliRunner().invoke(app, ["monitor", "--data", str(crm), "--scores", scores])
    assert other.exit_code == 2, other.output
    assert "it holds scores of ['dealscore']" in other.output and "--model-name" in other.output


@pytest.mark.parametrize("where", ["folder", "sqlite"])
def test_monitor_without_scores_says_what_to_run_and_creates_nothing(where, crm, tmp_path):
    # given a place nothing was written to
    target = {"folder": str(tmp_path / "none"), "sqlite": f"sqlite:///{tmp_path / 'none.db'}"}
    # when the monitor is asked about it
    result = CliRunner().invoke(app, ["monitor", "--data", str(crm), "--scores", target[where]])
    # then it says so and what to do, without a traceback, and leaves no empty store behind
    assert result.exit_code == 2, result.output
    assert "no scores at" in result.output and "dealscore score" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_monitor_reads_the_scores_back_from_postgresql(crm, model_store, pg_database):
    # given a database of its own on the server, and scores written to it on two nights
    url = pg_database("monitored")
    for night in ("2025-12-01", "2026-05-20"):
        _score(crm, model_store, url, night)
    # when the monitor reads them
    result = CliRunner().invoke(
        app, ["monitor", "--data", str(crm), "--scores", url, "--model-name", "dealscore"]
    )
    # then the first night is judged and the second pending, as from any other store
    assert result.exit_code == 0, result.output
    written = pd.read_sql_table("scores", sa.create_engine(url))
    first = (pd.to_datetime(written["as_of"], utc=True) < "2026-01-01").sum()
    assert f"{first:,} elapsed" in result.output
    assert f"{len(written) - first:,} pending" in result.output
