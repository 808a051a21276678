"""The data commands (generate, validate, ingest), driven as a user would through Typer's
CliRunner."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.synthetic import DEFAULT_EXPORT_DATE

runner = CliRunner()
MAVEN_MAPPING = Path(__file__).resolve().parents[2] / "examples" / "maven-crm" / "mapping.yaml"


def test_generate_then_validate(tmp_path):
    # when
    made = runner.invoke(
        app,
        [
            "generate",
            "--deals",
            "300",
            "--seed",
            "3",
            "--export-date",
            "2026-06-30",
            "--out",
            str(tmp_path),
        ],
    )
    checked = runner.invoke(app, ["validate", str(tmp_path)])
    # then
    assert made.exit_code == 0, made.output
    assert "opportunities" in made.output and "win rate" in made.output
    assert (tmp_path / "truth.parquet").is_file() and (tmp_path / "activities.parquet").is_file()
    assert checked.exit_code == 0, checked.output
    assert "valid" in checked.output and "open pipeline" in checked.output
    created = pd.read_parquet(tmp_path / "opportunities.parquet")["created_at"]
    assert created.max() < pd.Timestamp("2026-06-30", tz="UTC")


def test_generate_reads_a_settings_file_and_options_override_it(tmp_path):
    config = tmp_path / "gen.toml"
    config.write_text('deals = 200\nseed = 4\nexport_date = "2025-01-01"\n')
    result = runner.invoke(
        app, ["generate", "--config", str(config), "--deals", "150", "--out", str(tmp_path / "crm")]
    )
    assert result.exit_code == 0, result.output
    deals = pd.read_parquet(tmp_path / "crm" / "opportunities.parquet")
    assert len(deals) == 150
    assert deals["created_at"].max() < pd.Timestamp(
        "2025-01-01", tz="UTC"
    )  # the file's export date
    assert deals["created_at"].max() > pd.Timestamp("2024-10-01", tz="UTC")
    config.write_text("deal = 5\n")
    bad = runner.invoke(app, ["generate", "--config", str(config), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown setting" in bad.output


def test_generate_defaults_to_the_documented_export_date(tmp_path):
    # when generate is run twice without --export-date, on any day
    for out in ("a", "b"):
        result = runner.invoke(app, ["generate", "--deals", "100", "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    # then both are the same CRM as of the documented demo's date, so its figures reproduce
    first, second = (pd.read_parquet(tmp_path / o / "opportunities.parquet") for o in "ab")
    pd.testing.assert_frame_equal(first, second)
    export = pd.Timestamp(DEFAULT_EXPORT_DATE, tz="UTC")
    assert export - pd.Timedelta(days=60) < first["created_at"].max() < export


def test_validate_broken_export_exits_non_zero_and_names_the_problem(tables, tmp_path):
    broken = tables.opportunities.assign(status=["won", "lost", "pending"])
    broken.to_csv(tmp_path / "opportunities.csv", index=False)
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "opportunities.status" in result.output and "pending" in result.output


@pytest.mark.parametrize(
    ("created_at", "said"),
    [
        (["abc", "31/02/2025", "soon"], "opportunities.created_at: 3 rows fail 'parseable as"),
        (["", "", ""], "opportunities.created_at: 3 rows fail 'not_nullable'"),
        (None, "opportunities.created_at: 3 rows fail 'required column present'"),
    ],
    ids=["unreadable", "empty", "no-column"],
)
def test_validate_reports_an_export_with_no_readable_creation_date(
    tables, tmp_path, created_at, said
):
    # given opportunities whose created_at cannot be read, or is not there at all, two open
    # deals, and an amount written with a thousands separator (text a summary must not add up)
    deals = tables.opportunities.assign(
        status=["won", "open", "open"],
        closed_at=[tables.opportunities["closed_at"].iloc[0], pd.NaT, pd.NaT],
        amount=["1 000", "2500", "400"],
    )
    deals = deals.drop(columns="created_at") if created_at is None else deals
    if created_at is not None:
        deals["created_at"] = created_at
    deals.to_csv(tmp_path / "opportunities.csv", index=False)
    # when it is validated
    result = runner.invoke(app, ["validate", str(tmp_path)])
    # then the summary and every broken rule print, and the exit code says invalid
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1, result.output
    assert said in result.output and "INVALID" in result.output
    assert "created: no readable date" in result.output
    assert "open pipeline: 2 deals, value 2,900" in result.output
    assert "opportunities.amount: 1 row fails 'parseable as number' e.g. 1 000" in result.output


def test_validate_warnings_do_not_fail(tables, tmp_path):
    tables.opportunities.assign(account_id=["A1", "A2", None]).to_csv(
        tmp_path / "opportunities.csv", index=False
    )
    tables.accounts.to_csv(tmp_path / "accounts.csv", index=False)
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 0 and "WARNING" in result.output


def test_validate_unreadable_source_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such folder" in result.output


def test_ingest_maven_with_its_mapping(maven_dir, tmp_path):
    result = runner.invoke(
        app, ["ingest", str(maven_dir), "--mapping", str(MAVEN_MAPPING), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "won 4,238" in result.output
    again = runner.invoke(app, ["validate", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".dealscore-tables.json",  # what this ingest wrote: a rerun may replace only these
        "accounts.parquet",
        "opportunities.parquet",
        "owners.parquet",
    ]


def test_ingest_writes_nothing_when_the_export_is_invalid(tables, tmp_path):
    src, out = tmp_path / "raw", tmp_path / "out"
    src.mkdir()
    tables.opportunities.assign(amount=[-1.0, 2.0, 3.0]).to_csv(
        src / "opportunities.csv", index=False
    )
    result = runner.invoke(app, ["ingest", str(src), "--out", str(out)])
    assert result.exit_code == 1 and "opportunities.amount" in result.output
    assert not out.exists()


def test_validating_a_missing_sqlite_database_creates_nothing(tmp_path):
    # when a SQLite URL names a file that is not there
    result = runner.invoke(app, ["validate", f"sqlite:///{tmp_path / 'nosuch.db'}"])
    # then it says so, and no empty database is left behind
    assert result.exit_code == 2
    assert "no SQLite database at" in result.output
    assert not (tmp_path / "nosuch.db").exists()
