"""build_features on real and partial exports: sensible values, missing tables become NaN."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dealscore.cli import app
from dealscore.features import (
    CATALOGUE,
    FEATURE_NAMES,
    QUARTER_CATALOGUE,
    QUARTER_FEATURE_NAMES,
    build_features,
    fit_feature_state,
    parse_icp,
)
from dealscore.features.engagement import NAMES as ENGAGEMENT_NAMES  # with prospect behaviour
from dealscore.io import read_export
from dealscore.schemas import validate_tables
from dealscore.synthetic import GeneratorSettings, generate_crm

MAVEN_MAPPING = Path(__file__).resolve().parents[2] / "examples" / "maven-crm" / "mapping.yaml"
EXPORT = pd.Timestamp("2026-03-01", tz="UTC")


@pytest.fixture(scope="module")
def crm():
    generated = generate_crm(GeneratorSettings(deals=1500, seed=8, export_date=EXPORT))
    tables, _ = validate_tables(generated.tables)
    return tables, generated.truth


def test_every_open_deal_gets_one_row_of_catalogued_floats(crm):
    tables, _ = crm
    features = build_features(tables, EXPORT)
    deals = tables.opportunities
    assert set(features["opportunity_id"]) == set(
        deals.loc[deals["status"] == "open", "opportunity_id"]
    )
    assert list(features.columns[2:]) == QUARTER_FEATURE_NAMES
    assert [f.name for f in CATALOGUE] == FEATURE_NAMES
    assert FEATURE_NAMES + [f.name for f in QUARTER_CATALOGUE] == QUARTER_FEATURE_NAMES
    assert (features["age_days"] > 0).all() and (features["days_to_quarter_end"] > 0).all()
    assert features["lookalike_win_rate"].between(0, 1).all()


def test_features_carry_the_signal_the_story_put_there(crm):
    # given snapshots late in closed deals' lives
    tables, _ = crm
    closed = tables.opportunities[tables.opportunities["status"] != "open"]
    pairs = pd.DataFrame(
        {
            "opportunity_id": closed["opportunity_id"],
            "as_of": closed["created_at"] + 0.8 * (closed["closed_at"] - closed["created_at"]),
        }
    )
    features = build_features(tables, pairs).merge(
        closed[["opportunity_id", "status"]], on="opportunity_id"
    )
    won = features["status"] == "won"
    # then wins show more recent activity, more inbound, more contacts than losses
    assert features.loc[won, "activities_30d"].mean() > features.loc[~won, "activities_30d"].mean()
    assert (
        features.loc[won, "inbound_share_90d"].mean()
        > features.loc[~won, "inbound_share_90d"].mean()
    )
    assert (
        features.loc[won, "distinct_contacts"].mean()
        > features.loc[~won, "distinct_contacts"].mean()
    )
    assert features.loc[~won, "late_entry"].mean() > features.loc[won, "late_entry"].mean()


def test_documented_icp_rules_score_accounts(crm):
    tables, _ = crm
    rules = parse_icp(
        {
            "rules": [
                {"name": "sw", "column": "industry", "in": ["software"], "weight": 3},
                {"name": "big", "column": "employees", "between": [1000, 1e9]},
            ]
        }
    )
    features = build_features(tables, EXPORT, fit_feature_state(tables, EXPORT, rules))
    accounts = tables.accounts.set_index("account_id")
    deals = tables.opportunities.set_index("opportunity_id").loc[features["opportunity_id"]]
    expected = (
        3 * (accounts.loc[deals["account_id"], "industry"] == "software").to_numpy()
        + (accounts.loc[deals["account_id"], "employees"] >= 1000).to_numpy()
    ) / 4
    np.testing.assert_allclose(features["icp_rule_score"], expected)
    with pytest.raises(ValueError, match="exactly one"):
        parse_icp({"rules": [{"name": "x", "column": "industry"}]})


def test_missing_optional_tables_give_missing_values_not_a_crash(crm):
    tables, _ = crm
    bare = tables.with_tables(
        activities=None,
        contacts=None,
        stage_history=None,
        accounts=None,
        forecasts=None,
        owners=None,
    )
    features = build_features(bare, EXPORT)
    assert features[ENGAGEMENT_NAMES].isna().all().all()
    assert features["stage_rank"].isna().all() and features["win_rate_industry"].isna().all()
    assert features["lookalike_win_rate"].isna().all()
    assert features["age_days"].notna().all() and features["win_rate_product"].notna().all()


def test_unknown_categories_at_scoring_fall_back_to_the_prior(crm):
    tables, _ = crm
    deals = tables.opportunities.copy()
    deals.loc[deals["status"] == "open", "product"] = "brand_new_product"
    features = build_features(tables.with_tables(opportunities=deals), EXPORT)
    assert features["win_rate_product"].nunique() == 1  # everyone gets the global rate
    assert features["won_value_product"].isna().all()


def test_maven_sample_builds_with_sensible_missing_values(maven_dir):
    tables, _ = validate_tables(read_export(maven_dir, MAVEN_MAPPING).tables)
    features = build_features(tables, "2017-07-01")
    assert len(features) > 1000
    assert (
        features["owner_win_rate"].between(0, 1).all()
        and features["win_rate_product"].notna().all()
    )
    assert features[ENGAGEMENT_NAMES].isna().all().all()  # Maven has no activities


def test_cli_lists_and_builds_features(tmp_path):
    runner = CliRunner()
    listed = runner.invoke(app, ["features", "list"])
    assert (
        listed.exit_code == 0
        and "inbound_share_90d" in listed.output
        and f"{len(CATALOGUE)} features" in listed.output
        and "won-this-quarter model only" in listed.output
        and "close_room_days" in listed.output
    )
    runner.invoke(
        app,
        [
            "generate",
            "--deals",
            "300",
            "--seed",
            "1",
            "--export-date",
            "2026-01-01",
            "--out",
            str(tmp_path / "crm"),
        ],
    )
    out = tmp_path / "features.parquet"
    built = runner.invoke(
        app,
        [
            "features",
            "build",
            "--data",
            str(tmp_path / "crm"),
            "--as-of",
            "2025-12-01",
            "--out",
            str(out),
        ],
    )
    assert built.exit_code == 0, built.output
    frame = pd.read_parquet(out)
    assert len(frame) > 0 and (frame["as_of"] == pd.Timestamp("2025-12-01", tz="UTC")).all()
    bad = runner.invoke(
        app,
        [
            "features",
            "build",
            "--data",
            str(tmp_path / "crm"),
            "--as-of",
            "someday",
            "--out",
            str(out),
        ],
    )
    assert bad.exit_code == 2 and "--as-of" in bad.output


def test_cli_builds_nothing_from_an_invalid_export(tables, tmp_path):
    tables.opportunities.assign(status=["won", "lost", "pending"]).to_csv(
        tmp_path / "opportunities.csv", index=False
    )
    out = tmp_path / "features.parquet"
    result = CliRunner().invoke(
        app,
        ["features", "build", "--data", str(tmp_path), "--as-of", "2025-06-01", "--out", str(out)],
    )
    assert result.exit_code == 1 and "opportunities.status" in result.output
    assert not out.exists()


def test_a_deal_first_quoted_at_zero_has_no_amount_change_and_no_warning(tables):
    # given an open deal whose first recorded amount was 0, then 500
    history = pd.DataFrame(
        {
            "opportunity_id": ["O3", "O3"],
            "changed_at": [
                pd.Timestamp("2025-03-01", tz="UTC"),
                pd.Timestamp("2025-03-05", tz="UTC"),
            ],
            "stage": ["prospecting", "qualification"],
            "amount": [0.0, 500.0],
        }
    )
    quoted = tables.with_tables(stage_history=pd.concat([tables.stage_history, history]))
    # when its features are built, with a numeric warning an error
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        row = build_features(quoted, pd.Timestamp("2025-03-10", tz="UTC")).set_index(
            "opportunity_id"
        )
    # then its change since first quoted is missing, not infinite, and nothing was printed
    assert np.isnan(row.loc["O3", "amount_change_pct"])


def _due_march_28(tables):
    """The tiny export with its open deal O3 in negotiation, expected to close on 2025-03-28."""
    history = pd.DataFrame(
        {
            "opportunity_id": ["O3"],
            "changed_at": [pd.Timestamp("2025-03-02", tz="UTC")],
            "stage": ["negotiation"],
            "close_date": [pd.Timestamp("2025-03-28", tz="UTC")],
        }
    )
    return tables.with_tables(stage_history=pd.concat([tables.stage_history, history]))


def test_a_close_date_left_in_a_quarter_that_is_over_is_flagged(tables):
    # given an open deal due 2025-03-28 that missed the quarter's end and kept that date
    dated = _due_march_28(tables)

    def flag(as_of: str) -> float:
        built = build_features(dated, pd.Timestamp(as_of, tz="UTC")).set_index("opportunity_id")
        return built.loc["O3", "close_date_in_past_quarter"]

    # when it is scored before the date, after it in the same quarter, and in the next quarter
    # then only the next quarter sees a close date in a quarter that is over
    assert flag("2025-03-20") == 0.0
    assert flag("2025-03-30") == 0.0
    assert flag("2025-04-02") == 1.0
    # and a deal with no close date says nothing
    assert np.isnan(
        build_features(tables, pd.Timestamp("2025-04-02", tz="UTC"))
        .set_index("opportunity_id")
        .loc["O3", "close_date_in_past_quarter"]
    )


def test_lookalike_rate_is_shared_by_accounts_alike_and_falls_back_without_a_region(crm):
    # given accounts of which a third have no region
    tables, _ = crm
    accounts = tables.accounts.copy()
    accounts.loc[accounts.index[::3], "region"] = None
    tables = replace(tables, accounts=accounts)
    # when the open deals' features are built
    features = build_features(tables, EXPORT)
    # then a deal whose account lacks a region gets its industry's rate
    deals = tables.opportunities.set_index("opportunity_id")
    account = deals.loc[features["opportunity_id"], "account_id"].to_numpy()
    shown = accounts.set_index("account_id").loc[account]
    no_region = shown["region"].isna().to_numpy()
    assert no_region.any() and (~no_region).any()
    lookalike, industry = features["lookalike_win_rate"], features["win_rate_industry"]
    assert np.allclose(lookalike[no_region], industry[no_region])
    # and deals alike on industry, size and region share one rate, which is their own
    size = pd.cut(shown["employees"], [0, 50, 200, 1000, 5000, np.inf], right=False)
    key = shown["industry"].astype(str) + "|" + size.astype(str) + "|" + shown["region"].astype(str)
    alike = pd.Series(lookalike.to_numpy()[~no_region]).groupby(key.to_numpy()[~no_region])
    assert (alike.nunique() == 1).all()
    assert not np.allclose(lookalike[~no_region], industry[~no_region])


def test_the_room_to_the_quarter_end_is_where_the_expected_close_sits_against_it(tables):
    # given an open deal expected to close on 2025-03-28
    dated = _due_march_28(tables)

    def row(as_of: str) -> pd.Series:
        built = build_features(dated, pd.Timestamp(as_of, tz="UTC")).set_index("opportunity_id")
        return built.loc["O3"]

    # when it is built in March, and again once the quarter is over
    march, april = row("2025-03-20"), row("2025-04-02")
    # then in March its close lies 4 days before the quarter's end; in April, 95 days before
    # the end of the quarter it is now in (a close already behind it)
    assert march["close_room_days"] == pytest.approx(4.0)
    assert april["close_room_days"] == pytest.approx(95.0)
    # and it is the days left less the days out, the diagonal the model could not draw alone
    for built in (march, april):
        assert built["close_room_days"] == pytest.approx(
            built["days_to_quarter_end"] - built["close_date_days_out"]
        )
    # and without a close date it is missing
    assert np.isnan(
        build_features(tables, pd.Timestamp("2025-04-02", tz="UTC"))
        .set_index("opportunity_id")
        .loc["O3", "close_room_days"]
    )


def test_the_week_of_the_quarter_counts_whole_weeks_left(tables):
    # given the deals open on a quarter's first day, with 11 days left, and in its last days
    def weeks(as_of: str) -> set[float]:
        built = build_features(tables, pd.Timestamp(as_of, tz="UTC"))
        return set(built["quarter_week"].unique())

    # then a whole week left or more is a week; under 7 days is the last (0); a 92-day
    # quarter's first day counts in its first week (12), as a 90-day quarter's does
    assert weeks("2025-03-20") == {1.0}  # 11 days left
    assert weeks("2025-03-28") == {0.0}
    assert weeks("2026-01-01") == {12.0}  # 90 days left
    assert weeks("2025-07-01") == {12.0}  # 92 days left
