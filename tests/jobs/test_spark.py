"""The Spark engine against the pandas engine: same scores, reasons, rejects and refusals.

Spark runs in local mode (local[2]); it needs pyspark (the `spark` extra) and Java 17+ (Debian's
openjdk-17-jre-headless, which .ci/run installs). Without them these tests skip, except under
CI=true, where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.features import build_features
from dealscore.io import read_export, write_tables
from dealscore.jobs.score import run_score
from dealscore.pipeline.scoring import ScoreSettings
from dealscore.schemas import ContractError
from dealscore.schemas.contract import validate_tables
from dealscore.schemas.scores import FACTOR_COLUMNS

AS_OF = pd.Timestamp("2026-05-01", tz="UTC")  # before the export's date: past rows are cut off


def _needs_spark() -> None:
    reason = ""
    if importlib.util.find_spec("pyspark") is None:
        reason = "pyspark is not installed: pip install 'dealscore[spark]'"
    elif shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        reason = "no Java for Spark: apt-get install openjdk-17-jre-headless"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Spark tests: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def spark():
    _needs_spark()
    from dealscore.pipeline.spark import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.fixture
def settings(model_store, tmp_path) -> ScoreSettings:
    """Scores to a folder; Spark settings take the test's session and three groups of deals."""
    return ScoreSettings(
        model="models:/dealscore@champion",
        out=str(tmp_path / "scores"),
        tracking_uri=model_store,
        track=False,
    )


def on_spark(settings: ScoreSettings, out: Path) -> ScoreSettings:
    return replace(settings, out=str(out), engine="spark", spark_groups=3)


def written(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "scores").sort_values("opportunity_id", ignore_index=True)


@pytest.mark.slow  # run by make test-all (CI)
def test_both_engines_write_the_same_scores_reasons_and_rejects(
    spark, settings, tmp_path, unknown_stages
):
    # given an export where 2% of the deals open at AS_OF sit in a stage the model never saw
    export = unknown_stages(tmp_path / "crm", 0.02)
    # when each engine scores it
    pandas_run = run_score(export, replace(settings, out=str(tmp_path / "pandas")), AS_OF)
    spark_run = run_score(export, on_spark(settings, tmp_path / "spark"), AS_OF)
    # then both wrote the same deals with the same probabilities, bands and reasons
    ours, theirs = written(tmp_path / "pandas"), written(tmp_path / "spark")
    assert len(ours) > 100 and ours["opportunity_id"].equals(theirs["opportunity_id"])
    for column in ["win_probability", "expected_amount"] + [
        c for c in FACTOR_COLUMNS if c.endswith("_contribution")
    ]:
        np.testing.assert_allclose(theirs[column], ours[column], atol=1e-9, err_msg=column)
    for column in ["band", "trend", "model_version"] + [
        c for c in FACTOR_COLUMNS if not c.endswith("_contribution")
    ]:
        assert theirs[column].fillna("").equals(ours[column].fillna("")), column
    # and rejected the same deals for the same reason, reconciled with the same count
    key = ["opportunity_id", "rule", "reason"]
    assert len(pandas_run.rejected) > 0
    assert (
        spark_run.rejected[key]
        .sort_values(key, ignore_index=True)
        .equals(pandas_run.rejected[key].sort_values(key, ignore_index=True))
    )
    assert spark_run.open_deals == pandas_run.open_deals
    # and measured the same drift
    pd.testing.assert_series_equal(spark_run.drift.sort_index(), pandas_run.drift.sort_index())
    assert spark_run.drift_warnings == pandas_run.drift_warnings


@pytest.mark.slow  # run by make test-all (CI)
def test_both_engines_default_to_the_exports_own_time(spark, settings, crm, tmp_path):
    # when each engine scores the export without a time
    pandas_run = run_score(crm, replace(settings, out=str(tmp_path / "pandas")))
    spark_run = run_score(crm, on_spark(settings, tmp_path / "spark"))
    # then both scored as of the second after its latest dated fact, the same deals
    assert spark_run.as_of == pandas_run.as_of
    assert pandas_run.as_of.microsecond == 0
    assert spark_run.open_deals == pandas_run.open_deals > 0


@pytest.mark.slow  # run by make test-all (CI)
def test_a_spark_rerun_replaces_its_rows_and_the_next_day_carries_the_trend(
    crm, spark, settings, tmp_path
):
    spark_settings = on_spark(settings, tmp_path / "spark")
    first = run_score(crm, spark_settings, AS_OF)
    run_score(crm, spark_settings, AS_OF)
    assert len(written(tmp_path / "spark")) == len(first.scores)
    later = run_score(crm, spark_settings, AS_OF + pd.Timedelta(days=7))
    carried = later.scores["previous_probability"].notna()
    assert carried.any() and set(later.scores.loc[carried, "trend"]) <= {
        "improving",
        "steady",
        "declining",
    }
    assert len(written(tmp_path / "spark")) == len(first.scores) + len(later.scores)
    # and the trends and why the moved scores moved are the pandas engine's
    pandas_settings = replace(settings, out=str(tmp_path / "pandas"))
    run_score(crm, pandas_settings, AS_OF)
    ours = run_score(crm, pandas_settings, AS_OF + pd.Timedelta(days=7)).scores
    columns = ["opportunity_id", "trend", "change_reason"]
    theirs = later.scores[columns].sort_values("opportunity_id", ignore_index=True).fillna("")
    ours = ours[columns].sort_values("opportunity_id", ignore_index=True).fillna("")
    assert (ours["change_reason"] != "").sum() > 5
    pd.testing.assert_frame_equal(theirs, ours)


@pytest.mark.slow  # run by make test-all (CI)
def test_no_open_deals_on_spark_writes_nothing_and_says_so(crm, spark, settings, tmp_path):
    result = run_score(crm, on_spark(settings, tmp_path / "spark"), pd.Timestamp("2000-01-01"))
    assert result.open_deals == 0 and result.scores.empty and result.rejected.empty


@pytest.mark.slow  # run by make test-all (CI)
def test_spark_warns_like_pandas_on_an_export_filling_other_columns(crm, spark, settings, tmp_path):
    # given the champion of `crm`, and the same export without its rep forecasts
    write_tables(read_export(crm).tables.with_tables(forecasts=None), tmp_path / "other")
    said: list[str] = []
    # when Spark scores it
    run_score(tmp_path / "other", on_spark(settings, tmp_path / "out"), AS_OF, progress=said.append)
    # then it names what the export lacks, as the pandas engine does
    (warning,) = [line for line in said if line.startswith("WARNING") and "lacks" in line]
    assert "forecasts.forecast_category" in warning and "dealscore v1" in warning


def _broken(crm: Path, folder: Path) -> Path:
    """A copy breaking one rule of each kind: a value, a key, a foreign key, event timing."""
    tables = read_export(crm).tables
    acts = tables.activities.copy()
    acts.loc[acts.index[:3], "opportunity_id"] = "no-such-deal"
    acts.loc[acts.index[3:5], "type"] = "telepathy"
    deals = pd.concat([tables.opportunities, tables.opportunities.iloc[[5]]], ignore_index=True)
    forecasts = tables.forecasts.copy()
    closed = tables.opportunities.dropna(subset=["closed_at"]).iloc[0]
    late = forecasts["opportunity_id"] == closed["opportunity_id"]
    forecasts.loc[late, "submitted_at"] = closed["closed_at"] + pd.Timedelta(days=3)
    write_tables(
        tables.with_tables(opportunities=deals, activities=acts, forecasts=forecasts), folder
    )
    return folder


def test_both_engines_refuse_a_broken_export_with_the_same_report(crm, spark, settings, tmp_path):
    # given an export breaking a value rule, a key, a foreign key and the event timing
    broken = _broken(crm, tmp_path / "broken")
    # when Spark scores it, then nothing is written and every broken rule is reported
    with pytest.raises(ContractError) as caught:
        run_score(broken, on_spark(settings, tmp_path / "spark"), AS_OF)
    assert not (tmp_path / "spark" / "scores").exists()
    found = {(i.table, i.column, i.rule, i.count) for i in caught.value.report.errors}
    # and the report is the pandas engine's, rule for rule and count for count
    _, report = validate_tables(read_export(broken).tables)
    assert found == {(i.table, i.column, i.rule, i.count) for i in report.errors}
    rules = {(table, rule.split("(")[0].split(":")[0]) for table, _, rule, _ in found}
    assert rules == {
        ("opportunities", "unique"),
        ("activities", "isin"),
        ("activities", "foreign key"),
        ("forecasts", "not after the deal closed"),
    }


@pytest.mark.slow  # run by make test-all (CI)
def test_cli_scores_spark_tables_and_explains_the_engine(crm, spark, model_store, tmp_path):
    # given the export registered as Spark tables (temporary views in the current database)
    tables = read_export(crm).tables
    for name, _ in tables.present():
        spark.read.parquet(str(crm / f"{name}.parquet")).createOrReplaceTempView(name)
    try:
        # when the CLI scores them on Spark
        result = CliRunner().invoke(
            app,
            [
                "score",
                "--data",
                "spark:",
                "--engine",
                "spark",
                "--as-of",
                "2026-05-01",
                "--out",
                str(tmp_path / "out"),
                "--tracking-uri",
                model_store,
            ],
        )
    finally:
        for name, _ in tables.present():
            spark.catalog.dropTempView(name)
    # then it reconciles every open deal, as the pandas engine does
    assert result.exit_code == 0, result.output
    expected = len(build_features(tables, AS_OF))
    assert f"open deals {expected:,} = scored {expected:,} + rejected 0" in result.output
    assert "--engine" in CliRunner().invoke(app, ["score", "--help"]).output


def test_spark_engine_with_a_mapping_says_to_ingest_first(crm, settings):
    with pytest.raises(ValueError, match="dealscore ingest"):
        run_score(crm, replace(settings, engine="spark"), AS_OF, mapping="salesforce")


def test_a_long_spark_job_reports_its_tasks_as_it_goes(spark):
    from dealscore.pipeline.spark.session import _reporting

    def slow(batches):
        import time

        for batch in batches:
            time.sleep(0.5)
            yield batch

    # given a job of a few half-second tasks, watched every 0.1 s
    lines: list[str] = []
    with _reporting(spark, lines.append, every=0.1):
        spark.range(0, 4, numPartitions=4).mapInPandas(slow, "id long").collect()
    # then lines said how many tasks were done
    assert any("tasks done" in line and "of 4" in line for line in lines), lines
