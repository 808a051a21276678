"""The nightly scorer end to end: same features as training, reasons, history, rejects."""

from __future__ import annotations

import copy
import errno
import os
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.errors import ModelMismatchError
from dealscore.explain.sentences import sentences
from dealscore.features import build_features
from dealscore.features.forecast import REP_INPUTS
from dealscore.io import read_export, write_tables
from dealscore.io.scores import open_store
from dealscore.jobs.score import run_score
from dealscore.pipeline.scoring import (
    ScoreSettings,
    TooManyRejectedError,
    score_deals,
)
from dealscore.schemas.scores import FACTOR_COLUMNS
from dealscore.tracking.models import ModelNotFoundError, load_model
from dealscore.tracking.pyfunc import PROBABILITY

MODEL = "models:/dealscore@champion"  # the name conftest's model_store registers
AS_OF = pd.Timestamp("2026-05-01", tz="UTC")  # before the generated export's date (2026-06-01)


@pytest.fixture
def settings(model_store, tmp_path) -> ScoreSettings:
    return ScoreSettings(
        model=MODEL,
        out=f"sqlite:///{tmp_path / 'scores.db'}",
        tracking_uri=model_store,
        track=False,
    )


def read_scores(settings: ScoreSettings) -> pd.DataFrame:
    return pd.read_sql_table("scores", settings.out)


def test_every_open_deal_is_scored_like_the_model_would(crm, settings):
    # when
    result = run_score(crm, settings, as_of=AS_OF)
    # then every deal open at as_of is scored, and the rows are what was written
    tables = read_export(crm).tables
    features = build_features(tables, AS_OF)
    assert result.open_deals == len(features) == len(result.scores) and result.rejected.empty
    assert len(read_scores(settings)) == len(result.scores)
    # and the probabilities are the registered pyfunc's on the same features (one feature path)
    model = mlflow.pyfunc.load_model("models:/dealscore@champion")
    bundle_features = build_features(
        tables, AS_OF, model.unwrap_python_model().bundle.feature_state
    )
    expected = model.predict(bundle_features[model.unwrap_python_model().bundle.feature_names])
    merged = result.scores.merge(
        bundle_features[["opportunity_id"]].assign(p=expected[PROBABILITY].to_numpy())
    )
    np.testing.assert_allclose(merged["win_probability"], merged["p"], atol=1e-9)
    # and each row carries its reasons: positive raise it, negative lower it, in words
    row = result.scores.iloc[0]
    assert row["up_1_contribution"] > 0 and row["down_1_contribution"] < 0
    assert isinstance(row["up_1_reason"], str) and row["up_1_reason"]
    assert set(result.scores["band"]) <= {"A", "B", "C", "D"}
    # and how the rest ends: won, lost and no decision sum to 1
    three = result.scores[["win_probability", "lost_probability", "no_decision_probability"]]
    np.testing.assert_allclose(three.sum(axis=1), 1.0)
    assert (result.scores["no_decision_probability"] > 0).all()
    assert result.scores[FACTOR_COLUMNS].notna().any().all()


def test_features_are_built_from_the_columns_scoring_reads_alone(crm, settings, monkeypatch):
    # given a scorer whose feature path records the activities it is given
    seen = []

    def spy(tables, *args, **kwargs):
        seen.append(tables.activities)
        return build_features(tables, *args, **kwargs)

    monkeypatch.setattr("dealscore.pipeline.scoring.build_features", spy)
    # when the export is scored
    run_score(crm, settings, as_of=AS_OF)
    # then the activities came without the columns only validation reads, labels as categoricals
    activities = seen[0]
    assert not {"activity_id", "account_id"} & set(activities.columns)
    assert isinstance(activities["type"].dtype, pd.CategoricalDtype)
    assert isinstance(activities["opportunity_id"].dtype, pd.CategoricalDtype)


def test_a_rerun_replaces_its_rows_and_a_later_run_carries_the_trend(crm, settings):
    first = run_score(crm, settings, as_of=AS_OF)
    run_score(crm, settings, as_of=AS_OF)  # rerun: same rows, not twice
    assert len(read_scores(settings)) == len(first.scores)
    # when the next day is scored
    later = run_score(crm, settings, as_of=AS_OF + pd.Timedelta(days=7))
    # then deals scored before carry that score and a trend
    seen = later.scores[later.scores["opportunity_id"].isin(first.scores["opportunity_id"])]
    assert len(seen) > 0 and seen["previous_probability"].notna().all()
    assert (seen["previous_as_of"] == AS_OF).all()
    assert set(seen["trend"]) <= {"improving", "steady", "declining"}
    assert (later.scores.loc[~later.scores.index.isin(seen.index), "trend"] == "new").all()
    assert len(read_scores(settings)) == len(first.scores) + len(later.scores)
    # and a score that moved says why, the others say nothing
    moved = later.scores["trend"].isin(["improving", "declining"])
    assert moved.sum() > 5
    assert later.scores.loc[~moved, "change_reason"].isna().all()
    assert later.scores.loc[moved, "change_reason"].notna().all()
    assert later.scores.loc[moved, "change_reason"].str.match(r"^(up|down): ").all()


def test_why_a_score_moved_is_the_factor_that_carried_it_furthest(crm, settings):
    # given a deal's score a week ago and now
    run_score(crm, settings, as_of=AS_OF)
    later = run_score(crm, settings, as_of=AS_OF + pd.Timedelta(days=7))
    moved = later.scores[later.scores["trend"].isin(["improving", "declining"])]
    # when its features at both times are built the plain way, each for every open deal
    bundle = later.model.bundle
    tables = read_export(crm).tables
    names = bundle.feature_names
    then, now = (
        build_features(tables, t, bundle.feature_state)
        .set_index("opportunity_id")
        .loc[moved["opportunity_id"], names]
        for t in (AS_OF, AS_OF + pd.Timedelta(days=7))
    )
    delta = bundle.estimator.contributions(now) - bundle.estimator.contributions(then)
    rising = delta.sum(axis=1) > 0
    np.testing.assert_array_equal(rising, moved["trend"] == "improving")
    delta[:, np.isin(names, list(REP_INPUTS))] = 0.0  # the rep's own call is not a reason
    top = np.asarray(names)[np.where(rising[:, None], delta, -delta).argmax(axis=1)]
    # then the written reason names first the factor whose credit moved furthest the way the
    # score moved, and the sentence the reasons use for it now
    stage_names = {rank: name for name, rank in bundle.feature_state.stage_order.items()}
    said = sentences(
        top.astype(object),
        now.to_numpy(dtype=float)[np.arange(len(top)), [names.index(f) for f in top]],
        now["stage_rank"].to_numpy(dtype=float),
        stage_names,
    )
    expected = [("up: " if up else "down: ") + text for up, text in zip(rising, said, strict=True)]
    first = moved["change_reason"].str.split("; ").str[0].tolist()
    assert len(first) > 5 and first == expected


def test_rejects_are_recorded_and_too_many_write_nothing(crm, settings, tmp_path, unknown_stages):
    # given 2% of open deals in a stage the model never saw
    few = unknown_stages(tmp_path / "few", 0.02)
    result = run_score(few, settings, as_of=AS_OF)
    # then they are rejected with the reason, and the rest is written; the counts reconcile
    assert len(result.rejected) > 0 and set(result.rejected["rule"]) == {"unknown_stage"}
    assert "legal_review" in result.rejected["reason"].iloc[0]
    assert result.open_deals == len(result.scores) + len(result.rejected)
    rejected = pd.read_sql_table("scores_rejected", settings.out)
    assert len(rejected) == len(result.rejected)
    # given 10%: above the 5% limit
    many = unknown_stages(tmp_path / "many", 0.10)
    before = read_scores(settings)
    with pytest.raises(TooManyRejectedError, match="nothing was written"):
        run_score(many, settings, as_of=AS_OF + pd.Timedelta(days=1))
    assert read_scores(settings).equals(before)


def test_a_date_with_no_open_deals_scores_nothing_and_says_so(crm, settings):
    result = run_score(crm, settings, as_of=pd.Timestamp("2000-01-01", tz="UTC"))
    assert result.open_deals == 0 and result.scores.empty and result.rejected.empty


def test_a_model_needing_features_this_version_lacks_is_a_clear_error(crm, settings):
    # given the champion, as if trained by a version with a feature this one does not build
    loaded = load_model(settings.model, settings.tracking_uri)
    bundle = copy.copy(loaded.bundle)
    bundle.feature_names = [*bundle.feature_names, "crystal_ball_score"]
    tables = read_export(crm).tables
    # then scoring says which and what to do
    with pytest.raises(ModelMismatchError, match=r"crystal_ball_score.*retrain"):
        score_deals(tables, replace(loaded, bundle=bundle), AS_OF, settings, scored_at=AS_OF)


def test_an_unknown_model_is_a_clear_error(crm, settings):
    with pytest.raises(ModelNotFoundError, match="dealscore@gold"):
        run_score(crm, replace(settings, model="models:/dealscore@gold"), as_of=AS_OF)


def test_cli_score_prints_the_reconciliation_and_bands(crm, model_store, tmp_path):
    out = tmp_path / "files"
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--data",
            str(crm),
            "--as-of",
            "2026-05-01",
            "--out",
            str(out),
            "--format",
            "csv",
            "--tracking-uri",
            model_store,
            "--model",
            MODEL,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "open deals" in result.output and "band A" in result.output
    # and it says which rung of the model ladder scored, and why training chose it
    assert "scored by the lightgbm rung of the model ladder (lightgbm: the simplest rung" in (
        result.output
    )
    (written,) = (out / "scores").glob("*.csv")
    assert len(pd.read_csv(written)) > 0
    # and drift was logged with the scoring run
    client = mlflow.MlflowClient(model_store)
    # (other tests log scoring runs into the same store: this one is found by its destination)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("dealscore-scoring").experiment_id],
        filter_string=f"params.`score.out` = '{out}'",
    )
    assert "psi.win_probability" in run.data.metrics and run.data.metrics["open_deals"] > 0
    assert run.data.params["score.out"] == str(out)


@pytest.mark.parametrize("table", ["activities", "stage_history", "accounts", "forecasts"])
def test_a_header_only_table_scores_like_a_missing_one(crm, settings, tmp_path, table):
    # given the export with one optional table reduced to its header line (a CSV of no rows)
    export = tmp_path / "export"
    export.mkdir()
    for file in crm.glob("*.parquet"):
        if file.stem != table:
            (export / file.name).write_bytes(file.read_bytes())
    header = pd.read_parquet(crm / f"{table}.parquet").columns
    (export / f"{table}.csv").write_text(",".join(header) + "\n")
    without = tmp_path / "without"
    without.mkdir()
    for file in export.glob("*.parquet"):
        (without / file.name).write_bytes(file.read_bytes())
    # when both are validated and scored
    check = CliRunner().invoke(app, ["validate", str(export)])
    empty = run_score(export, settings, as_of=AS_OF)
    missing = run_score(without, replace(settings, out=settings.out + "2"), as_of=AS_OF)
    # then validation passes and the scores are those of the export without the table
    assert check.exit_code == 0, check.output
    assert empty.open_deals == missing.open_deals > 0
    pd.testing.assert_series_equal(
        empty.scores.sort_values("opportunity_id")["win_probability"].reset_index(drop=True),
        missing.scores.sort_values("opportunity_id")["win_probability"].reset_index(drop=True),
    )


def test_the_nightly_default_is_the_exports_own_time_so_a_rerun_replaces_itself(
    crm, model_store, tmp_path
):
    # given the same export scored twice in one night without --as-of
    out = f"sqlite:///{tmp_path / 'nightly.db'}"
    command = ["score", "--data", str(crm), "--out", out, "--tracking-uri", model_store]
    command += ["--model", MODEL]
    first = CliRunner().invoke(app, command)
    second = CliRunner().invoke(app, command)
    # then both scored as of the second after the export's latest dated fact
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    deals = read_export(crm).tables.opportunities
    latest = max(deals["created_at"].max(), deals["closed_at"].max())
    expected = (latest + pd.Timedelta(seconds=1)).floor("s")
    assert f"as of {expected:%Y-%m-%d %H:%M} UTC" in second.output
    # and each open deal has one row, not two: the rerun replaced the first run's rows
    scores = pd.read_sql_table("scores", out)
    assert scores["opportunity_id"].is_unique and len(scores) > 0
    assert (pd.to_datetime(scores["as_of"], utc=True) == expected).all()


def _not_ours(model_input: pd.DataFrame) -> pd.DataFrame:
    """A pyfunc model of somebody else's: no dealscore bundle inside."""
    return model_input


def test_models_that_cannot_be_used_are_one_clear_line(model_store, crm, tmp_path):
    import mlflow.pyfunc

    # given a registered pyfunc that is not dealscore's
    mlflow.set_tracking_uri(model_store)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="other", python_model=_not_ours, pip_requirements=["pandas"]
        )
    cases = {
        info.model_uri: "is not a dealscore model",
        "s3://no-such-bucket/model": "cannot load model s3://",
    }
    for uri, message in cases.items():
        # when it is used to score, then the job stops with the reason, before any work
        result = CliRunner().invoke(
            app,
            ["score", "--data", str(crm), "--model", uri, "--tracking-uri", model_store]
            + ["--out", str(tmp_path / "scores")],
        )
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert not (tmp_path / "scores" / "scores").exists()


def test_an_unusable_tracking_store_stops_scoring_before_any_work(crm, tmp_path, monkeypatch):
    # given a tracking store that is a file where a folder must be (nothing to connect to)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    store = f"sqlite:///{blocker / 'mlflow.db'}"
    # when scoring would log its run there
    result = CliRunner().invoke(
        app,
        ["score", "--data", str(crm), "--tracking-uri", store, "--out", str(tmp_path / "out")],
    )
    # then it stops at once with one line, before reading or writing anything
    assert result.exit_code == 2, result.output
    assert "is not usable" in result.output and "Traceback" not in result.output
    assert "reading" not in result.output
    assert not (tmp_path / "out").exists()


def test_rows_breaking_the_contract_are_quarantined_not_fatal(crm, settings, tmp_path):
    # given the export with one activity of a deal open at AS_OF typed "fax" (not in the contract)
    export = tmp_path / "export"
    export.mkdir()
    for file in crm.glob("*.parquet"):
        (export / file.name).write_bytes(file.read_bytes())
    tables = read_export(crm).tables
    open_ids = set(build_features(tables, AS_OF)["opportunity_id"])
    acts = pd.read_parquet(crm / "activities.parquet")
    row = acts.index[acts["opportunity_id"].isin(open_ids)][0]
    victim = acts.loc[row, "opportunity_id"]
    acts.loc[row, "type"] = "fax"
    acts.to_parquet(export / "activities.parquet", index=False)
    # when it is scored
    result = run_score(export, settings, as_of=AS_OF)
    # then that deal is rejected with the table, column and rule, the rest scored, reconciled
    rejected = result.rejected.set_index("opportunity_id")
    assert rejected.loc[victim, "rule"] == "contract"
    assert rejected.loc[victim, "reason"].startswith("activities.type: isin")
    assert victim not in set(result.scores["opportunity_id"])
    assert result.open_deals == len(open_ids) == len(result.scores) + len(result.rejected)
    # and validate still reports the broken row, failing
    check = CliRunner().invoke(app, ["validate", str(export)])
    assert check.exit_code == 1 and "activities.type" in check.output
    # and above the allowed share of rejects nothing is written
    strict = replace(settings, out=f"sqlite:///{tmp_path / 'strict.db'}", max_rejected_share=0.0)
    with pytest.raises(TooManyRejectedError, match="nothing was written"):
        run_score(export, strict, as_of=AS_OF)


def test_drift_is_quiet_on_the_training_export_and_loud_on_a_shifted_one(crm, settings, tmp_path):
    # when the export the model was trained on is scored a week before its end, then at its own
    # time (a fresh demo, run nightly)
    week_before = run_score(crm, settings, as_of=pd.Timestamp("2026-05-25", tz="UTC"))
    fresh = run_score(crm, settings)
    # then nothing moved: the reference is the open pipeline at training time, and the scores
    # of the deals scored both times moved as a week moves them
    assert week_before.shift_since_previous is None
    assert fresh.drift.max() < 0.2, fresh.drift.sort_values().tail()
    assert fresh.shift_since_previous is not None and fresh.shift_since_previous < 0.2
    # given the same export where 40% of the open deals come from a lead source never seen
    shifted = tmp_path / "shifted"
    shifted.mkdir()
    for file in crm.glob("*.parquet"):
        (shifted / file.name).write_bytes(file.read_bytes())
    deals = pd.read_parquet(crm / "opportunities.parquet")
    open_rows = deals.index[deals["status"] == "open"]
    chosen = open_rows[: int(0.4 * len(open_rows))]
    deals.loc[chosen, "lead_source"] = "webinar"
    deals.to_parquet(shifted / "opportunities.parquet", index=False)
    # when it is scored, then the lead source's learned profile is flagged (no won value known
    # for the new source), and only inputs that depend on the lead source are
    moved = run_score(shifted, replace(settings, out=settings.out + "2")).drift
    flagged = set(moved[moved > 0.2].index)
    assert "won_value_lead_source" in flagged
    assert all("lead_source" in name for name in flagged), flagged


@pytest.mark.parametrize("command", ["train", "score"])
def test_an_unreachable_tracking_server_is_one_line_in_seconds(crm, tmp_path, monkeypatch, command):
    # given a tracking server URL nothing listens on (loopback, a closed port), and MLflow's
    # own HTTP settings as they come (7 retries with backoff: minutes)
    for name in ("MAX_RETRIES", "TIMEOUT", "BACKOFF_FACTOR"):
        monkeypatch.delenv(f"MLFLOW_HTTP_REQUEST_{name}", raising=False)
    monkeypatch.chdir(tmp_path)
    # when a job that logs there starts
    started = time.monotonic()
    result = CliRunner().invoke(
        app, [command, "--data", str(crm), "--tracking-uri", "http://127.0.0.1:9"]
    )
    # then it stops before any work, in seconds, with one line naming the store
    assert time.monotonic() - started < 15
    assert result.exit_code == 2, result.output
    assert "MLflow tracking store http://127.0.0.1:9 is not usable" in result.output
    assert "Traceback" not in result.output and "reading" not in result.output


def test_the_reps_own_call_is_a_reason_only_when_asked(crm, settings, tmp_path):
    # when the same deals are scored with the default settings and with --rep-reasons
    features = [c for c in FACTOR_COLUMNS if c.endswith("_feature")]
    plain = run_score(crm, settings, as_of=AS_OF).scores
    config = tmp_path / "score.toml"
    config.write_text("track = false\n")
    asked = CliRunner().invoke(
        app,
        [
            "score",
            "--data",
            str(crm),
            "--as-of",
            str(AS_OF.date()),
            "--out",
            f"sqlite:///{tmp_path / 'asked.db'}",
            "--tracking-uri",
            settings.tracking_uri,
            "--model",
            MODEL,
            "--config",
            str(config),
            "--rep-reasons",
        ],
    )
    assert asked.exit_code == 0, asked.output
    with_rep = pd.read_sql_table("scores", f"sqlite:///{tmp_path / 'asked.db'}")
    # then by default no reason is the rep's own forecast, and asked, some are
    assert not plain[features].isin(REP_INPUTS).any().any()
    assert with_rep[features].isin(REP_INPUTS).any().any()
    # and the probabilities are the same either way
    np.testing.assert_allclose(
        plain.sort_values("opportunity_id")["win_probability"],
        with_rep.sort_values("opportunity_id")["win_probability"],
    )


def test_scoring_far_past_the_export_warns_and_its_own_time_does_not(crm, settings):
    # when the export (its last event: 2026-05-31) is scored at its own time, then months later
    said: list[str] = []
    run_score(crm, settings, progress=said.append)
    assert not [line for line in said if line.startswith("WARNING")]
    run_score(crm, settings, as_of=pd.Timestamp("2027-01-01", tz="UTC"), progress=said.append)
    # then only the late one warns, with the gap in days
    (warning,) = [line for line in said if line.startswith("WARNING")]
    assert "scoring as of 2027-01-01" in warning and "days after the export's last event" in warning


def test_scoring_without_any_trained_model_leaves_no_files(crm, tmp_path, monkeypatch):
    # given a fresh folder with no MLflow store in it
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # when score is run there with the default model
    result = CliRunner().invoke(app, ["score", "--data", str(crm), "-o", "sqlite:///s.db"])
    # then it says there is no model, and neither a tracking store nor a scores file was made
    assert result.exit_code == 2, result.output
    assert "there is no MLflow store at" in result.output and "dealscore train" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_export_filling_other_columns_than_the_models_is_a_loud_warning(crm, settings, tmp_path):
    # given the champion of `crm`, and an export without its rep forecasts
    tables = read_export(crm).tables
    write_tables(tables.with_tables(forecasts=None), tmp_path / "other")
    said: list[str] = []
    # when it is scored
    run_score(tmp_path / "other", settings, as_of=AS_OF, progress=said.append)
    # then the scorer says which columns differ and which model it used
    (warning,) = [line for line in said if line.startswith("WARNING")]
    assert "lacks" in warning and "forecasts.forecast_category" in warning
    assert "model dealscore v1 (champion)" in warning
    # and the export it was trained on raises no such warning
    said.clear()
    run_score(crm, settings, as_of=AS_OF, progress=said.append)
    assert not [line for line in said if "lacks" in line]


def test_a_tracking_store_in_a_folder_that_is_not_there_creates_nothing(crm, tmp_path):
    # given a tracking URI whose folder does not exist (a typo in a path, say)
    store = f"sqlite:///{tmp_path / 'no' / 'such' / 'mlflow.db'}"
    # when scoring with it
    result = CliRunner().invoke(
        app, ["score", "--data", str(crm), "-o", str(tmp_path / "out"), "--tracking-uri", store]
    )
    # then it says there is no store there, and made neither the folder nor an empty store
    assert result.exit_code == 2, result.output
    assert "there is no MLflow store at" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _break_open_deal(crm, folder, change: str) -> tuple[list[str], int]:
    """A copy of `crm` where `change` breaks one or two deals open at AS_OF; returns their ids and
    how many deals were open at AS_OF in the unbroken export."""
    folder.mkdir()
    for file in crm.glob("*.parquet"):
        (folder / file.name).write_bytes(file.read_bytes())
    open_ids = build_features(read_export(crm).tables, AS_OF)["opportunity_id"]
    deals = pd.read_parquet(crm / "opportunities.parquet")
    first, second = (deals.index[deals["opportunity_id"] == i][0] for i in open_ids.iloc[:2])
    victims = [deals.loc[first, "opportunity_id"]]
    if change == "created_at far ahead":
        deals.loc[first, "created_at"] = pd.Timestamp("2099-06-01", tz="UTC")
    elif change == "closed_at long ago":
        deals.loc[first, "closed_at"] = pd.Timestamp("1900-01-01", tz="UTC")
    elif change == "closed_at before created_at":
        deals.loc[first, "status"] = "won"
        deals.loc[first, "closed_at"] = deals.loc[first, "created_at"] - pd.Timedelta(days=3)
    elif change == "id missing":
        deals.loc[first, "opportunity_id"] = None
        victims = [f"row {first + 1}"]
    elif change == "id repeated":
        deals.loc[second, "opportunity_id"] = victims[0]
        victims = [victims[0], victims[0]]
    deals.to_parquet(folder / "opportunities.parquet", index=False)
    return victims, len(open_ids)


@pytest.mark.parametrize(
    "change",
    [
        "created_at far ahead",
        "closed_at long ago",
        "closed_at before created_at",
        "id missing",
        "id repeated",
    ],
)
def test_a_quarantined_open_deal_is_a_contract_reject_whatever_broke(
    crm, settings, tmp_path, change
):
    # given an open deal whose own date or id breaks the contract
    victims, open_then = _break_open_deal(crm, tmp_path / "export", change)
    # when it is scored
    result = run_score(tmp_path / "export", replace(settings, max_rejected_share=0.5), as_of=AS_OF)
    # then each broken deal is a `contract` reject (one without an id by its row in the table),
    # and the count of open deals is the export's, scored plus rejected
    contract = result.rejected[result.rejected["rule"] == "contract"]
    assert sorted(contract["opportunity_id"]) == sorted(victims), contract
    assert result.open_deals == open_then == len(result.scores) + len(result.rejected)


def _half_then_no_space(_table, where, *_args, **_kwargs):
    """pyarrow's write on a full disk: part of the file, then ENOSPC."""
    where.write(b"half a file") if hasattr(where, "write") else Path(where).write_bytes(b"half")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("fault", ["locked sqlite", "full disk", "full tmpfs"])
def test_a_write_that_fails_is_one_line_exit_1_and_keeps_the_previous_scores(
    fault, crm, model_store, tmp_path, monkeypatch, tmpfs
):
    # given a night already scored into a SQLite file (waiting 1 s for other writers) or a
    # folder (on a small file system of its own where the test may mount one)
    database = tmp_path / "scores.db"
    out = {
        "locked sqlite": f"sqlite:///{database}?timeout=1",
        "full disk": str(tmp_path / "files"),
        "full tmpfs": str(tmpfs("16m") / "files") if fault == "full tmpfs" else "",
    }[fault]
    config = tmp_path / "score.toml"
    config.write_text("track = false\n")
    command = ["score", "--data", str(crm), "--as-of", "2026-05-01", "--out", out]
    command += ["--tracking-uri", model_store, "--model", MODEL, "--config", str(config)]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    before = open_store(out).history()
    # when the same night is scored again while another writer holds the database, or onto a
    # disk that is full (filled to the last byte, or the write call failing with ENOSPC)
    other = sqlite3.connect(database, isolation_level=None)
    if fault == "locked sqlite":
        other.execute("BEGIN IMMEDIATE")
    elif fault == "full disk":
        monkeypatch.setattr(pq, "write_table", _half_then_no_space)
    else:
        filler = Path(out).parent / "filler"
        with open(filler, "wb", buffering=0) as handle, pytest.raises(OSError):
            while True:
                handle.write(b"\0" * 65536)
    try:
        result = CliRunner().invoke(app, command)
    finally:
        other.close()
        monkeypatch.undo()
    # then the job stops with one line naming the destination and the cause, exit 1
    assert result.exit_code == 1, result.output
    said = result.output.strip().splitlines()[-1]
    cause = "database is locked after 1 s" if fault == "locked sqlite" else "disk full"
    assert said.startswith("cannot ") and out.split("?")[0] in said and cause in said
    assert "Traceback" not in result.output and "OPP" not in said and "INSERT" not in said
    # and the previous scores are intact, with no half-written file left behind
    (Path(out).parent / "filler").unlink(missing_ok=True)
    pd.testing.assert_frame_equal(open_store(out).history(), before)
    assert not list(tmp_path.rglob("*.tmp"))
