"""The data contract: each broken rule is named by table, column, rule, count and examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dealscore.features.asof import export_time, last_event
from dealscore.schemas import (
    ContractError,
    CrmTables,
    Opportunities,
    Severity,
    require_valid,
    validate_tables,
)
from dealscore.schemas.quarantine import quarantine
from dealscore.schemas.tables import coverage_change


def only_error(tables: CrmTables):
    _, report = validate_tables(tables)
    assert len(report.errors) == 1, report.to_text()
    return report.errors[0]


def error_for(tables: CrmTables, table: str, rule: str):
    """The one error for a rule; other errors may follow from the same break (orphans, say)."""
    _, report = validate_tables(tables)
    found = [i for i in report.errors if i.table == table and i.rule == rule]
    assert len(found) == 1, report.to_text()
    return found[0]


def with_opportunities(tables: CrmTables, **changes) -> CrmTables:
    frame = tables.opportunities.copy()
    for column, values in changes.items():
        frame[column] = values
    return tables.with_tables(opportunities=frame)


def test_valid_export_passes_and_is_coerced(tables):
    # given string dates and integer employee counts, as a CSV reader might produce
    raw = tables.with_tables(
        opportunities=tables.opportunities.assign(
            created_at=["2025-01-01", "2025-02-01T00:00:00Z", "2025-03-01"]
        )
    )
    # when
    validated, report = validate_tables(raw)
    # then
    assert report.ok and not report.issues, report.to_text()
    assert str(validated.opportunities[Opportunities.created_at].dtype) == "datetime64[us, UTC]"
    assert validated.accounts["employees"].dtype == "float64"
    assert report.row_counts["opportunities"] == 3


def test_missing_required_column(tables):
    issue = only_error(
        tables.with_tables(opportunities=tables.opportunities.drop(columns="status"))
    )
    assert (issue.table, issue.column, issue.rule, issue.count) == (
        "opportunities",
        "status",
        "required column present",
        3,
    )


def test_wrong_type(tables):
    issue = only_error(with_opportunities(tables, amount=["1000", "a lot", "400"]))
    assert (issue.table, issue.column, issue.rule, issue.count) == (
        "opportunities",
        "amount",
        "parseable as number",
        1,
    )
    assert issue.examples == ("a lot",)


def test_duplicate_id(tables):
    issue = error_for(
        with_opportunities(tables, opportunity_id=["O1", "O1", "O3"]), "opportunities", "unique"
    )
    assert (issue.column, issue.count, issue.examples) == ("opportunity_id", 2, ("O1",))


def test_closed_before_created(tables):
    closed_at = [pd.Timestamp("2024-12-01", tz="UTC"), tables.opportunities.closed_at[1], pd.NaT]
    issue = error_for(
        with_opportunities(tables, closed_at=closed_at),
        "opportunities",
        "closed_at_not_before_created_at",
    )
    assert issue.count == 1 and "closed_at" in issue.column and "O1" in issue.examples[0]


def test_unknown_status(tables):
    issue = only_error(with_opportunities(tables, status=["won", "maybe", "open"]))
    assert (
        issue.column == "status" and issue.rule.startswith("isin") and issue.examples == ("maybe",)
    )


def test_closed_at_must_match_status(tables):
    issue = only_error(with_opportunities(tables, status=["won", "lost", "won"]))
    assert (
        issue.rule == "closed_at_set_iff_closed" and issue.count == 1 and "O3" in issue.examples[0]
    )


def test_orphan_foreign_key(tables):
    issue = only_error(with_opportunities(tables, account_id=["A1", "A9", "A1"]))
    assert (issue.table, issue.column, issue.count, issue.examples) == (
        "opportunities",
        "account_id",
        1,
        ("A9",),
    )
    assert issue.rule == "foreign key: exists in accounts.account_id"


def test_unparseable_date(tables):
    issue = only_error(
        with_opportunities(tables, created_at=["2025-01-01", "31/02/2025", "2025-03-01"])
    )
    assert (issue.column, issue.rule, issue.count, issue.examples) == (
        "created_at",
        "parseable as timestamp",
        1,
        ("31/02/2025",),
    )


def test_stage_history_after_close(tables):
    history = tables.stage_history.copy()
    history.loc[1, "changed_at"] = pd.Timestamp("2025-03-02", tz="UTC")
    issue = only_error(tables.with_tables(stage_history=history))
    assert (issue.table, issue.column, issue.rule) == (
        "stage_history",
        "changed_at",
        "not after the deal closed",
    )


def test_a_closing_row_a_second_after_the_close_is_the_close(tables):
    # given the closing history row saved a second after closed_at (Salesforce does this)
    closed_at = tables.opportunities["closed_at"].dropna().iloc[0]
    deal = tables.opportunities.loc[
        tables.opportunities["closed_at"] == closed_at, "opportunity_id"
    ]
    history = tables.stage_history.copy()
    row = history.index[history["opportunity_id"] == deal.iloc[0]][-1]
    history.loc[row, "changed_at"] = pd.Timestamp(closed_at) + pd.Timedelta(seconds=1)
    # then it is valid; a minute and more later it is not
    _, report = validate_tables(tables.with_tables(stage_history=history))
    assert report.ok, report.to_text()
    history.loc[row, "changed_at"] = pd.Timestamp(closed_at) + pd.Timedelta(seconds=61)
    assert only_error(tables.with_tables(stage_history=history)).rule == "not after the deal closed"


@pytest.mark.parametrize(
    ("column", "value"),
    [("amount", float("inf")), ("amount", 1e308), ("close_date", "9999-12-31")],
)
def test_placeholders_and_absurd_values_are_errors(tables, column, value):
    values = pd.Series([None] * len(tables.opportunities), dtype=object)
    if column in tables.opportunities:
        values = tables.opportunities[column].astype(object).copy()
    values.iloc[-1] = value
    issue = only_error(with_opportunities(tables, **{column: values.to_numpy()}))
    assert (issue.table, issue.column, issue.count) == ("opportunities", column, 1)
    assert "less_than_or_equal_to" in issue.rule


def test_activity_linked_to_nothing(tables):
    activities = tables.activities.assign(opportunity_id=[None, None], account_id=[None, "A2"])
    issue = only_error(tables.with_tables(activities=activities))
    assert issue.rule == "linked_to_opportunity_or_account" and issue.count == 1


def test_probability_out_of_range(tables):
    forecasts = tables.forecasts.assign(probability=[80.0, None])
    issue = only_error(tables.with_tables(forecasts=forecasts))
    assert (issue.table, issue.column, issue.count) == ("forecasts", "probability", 1)


def test_open_deal_without_account_is_only_a_warning(tables):
    # given
    broken = with_opportunities(tables, account_id=["A1", "A2", None])
    # when
    _, report = validate_tables(broken)
    # then
    assert report.ok
    assert [(w.severity, w.rule, w.count) for w in report.warnings] == [
        (Severity.WARNING, "open deal has an account", 1)
    ]


def test_many_problems_are_all_reported(tables):
    broken = with_opportunities(tables, status=["won", "maybe", "open"], amount=[-1.0, 2.0, 3.0])
    _, report = validate_tables(broken)
    assert {i.column for i in report.errors} == {"status", "amount"}
    text = report.to_text()
    assert "opportunities.status" in text and "opportunities.amount" in text and "2 errors" in text


def test_only_opportunities_is_mandatory(tables):
    _, report = validate_tables(CrmTables(opportunities=tables.opportunities))
    assert report.ok


def test_require_valid_raises_with_the_report(tables):
    with pytest.raises(ContractError, match=r"opportunities.amount"):
        require_valid(with_opportunities(tables, amount=[-5.0, 1.0, 1.0]))


def test_input_frames_are_not_mutated(tables):
    before = tables.opportunities.copy()
    validate_tables(
        with_opportunities(tables, created_at=["2025-01-01", "2025-02-01", "2025-03-01"])
    )
    pd.testing.assert_frame_equal(tables.opportunities, before)


def test_quarantine_takes_out_broken_rows_and_the_deals_they_touch(tables):
    # given an activity on account A2 (deal O2's) with a date that cannot be parsed, and a
    # forecast of O1 dated long after its close
    activities = tables.activities.astype({"occurred_at": object}).copy()
    activities.loc[activities["account_id"] == "A2", "occurred_at"] = "yesterday-ish"
    forecasts = tables.forecasts.copy()
    forecasts.loc[forecasts["opportunity_id"] == "O1", "submitted_at"] = pd.Timestamp(
        "2026-01-01", tz="UTC"
    )
    broken = tables.with_tables(activities=activities, forecasts=forecasts)
    # when
    result = quarantine(broken)
    # then validate's report still lists every problem
    assert {(i.table, i.rule) for i in result.report.errors} >= {
        ("activities", "parseable as timestamp"),
        ("forecasts", "not after the deal closed"),
    }
    # and what is left is valid, without the touched deals anywhere
    _, report = validate_tables(result.tables)
    assert report.ok, report.to_text()
    reasons = result.deals.set_index("opportunity_id")["reason"].to_dict()
    assert reasons == {
        "O2": "activities.occurred_at: parseable as timestamp",
        "O1": "forecasts.submitted_at: not after the deal closed",
    }
    for name, frame in result.tables.present():
        if "opportunity_id" in frame and name != "contacts":
            assert not frame["opportunity_id"].isin(["O1", "O2"]).any(), name
    assert result.tables.opportunities["opportunity_id"].tolist() == ["O3"]
    assert result.dropped["opportunities"] == 2


def test_a_broken_account_or_owner_takes_out_the_deals_it_describes(tables):
    # given account A1 (deals O1, O3) with a negative head count, and owner U2 (deal O2)
    # managed by somebody the export does not know
    accounts = tables.accounts.assign(employees=[-5, 40])
    owners = tables.owners.assign(manager_id=["M1", "GHOST", None])
    # when
    result = quarantine(tables.with_tables(accounts=accounts, owners=owners))
    # then every deal is out, each for the row that describes it, and what is left is valid
    reasons = result.deals.set_index("opportunity_id")["reason"].to_dict()
    assert reasons["O1"].startswith("accounts.employees") and reasons["O3"] == reasons["O1"]
    assert reasons["O2"].startswith("owners.manager_id: foreign key")
    _, report = validate_tables(result.tables)
    assert report.ok, report.to_text()
    assert result.tables.opportunities is not None and result.tables.opportunities.empty


def test_quarantine_cannot_mend_a_missing_required_column(tables):
    broken = tables.with_tables(activities=tables.activities.drop(columns=["occurred_at"]))
    with pytest.raises(ContractError, match="required column"):
        quarantine(broken)


def test_coverage_lists_the_filled_columns_and_what_changed(tables):
    # given an export, and the same without forecasts and with one column left empty
    full = tables.coverage()
    emptied = tables.opportunities.assign(amount=None)
    thinner = tables.with_tables(forecasts=None, opportunities=emptied).coverage()
    # then coverage is per filled column, and the change names what the export lacks
    assert "forecasts.forecast_category" in full and "opportunities.amount" in full
    assert "opportunities.amount" not in thinner
    change = coverage_change(full, thinner)
    assert change.startswith("this export lacks") and "opportunities.amount" in change
    assert "adds" in coverage_change(thinner, full)
    assert coverage_change(full, full) == "" and coverage_change(None, thinner) == ""


@pytest.mark.parametrize("stray", ["2099-06-01", "1600-01-01"])
def test_a_fact_dated_far_outside_the_export_is_quarantined_and_never_its_time(tables, stray):
    # given an export of 2025 deals, plus one open deal whose creation date is a placeholder
    deals = tables.opportunities
    odd = deals.iloc[[-1]].assign(
        opportunity_id="O4", created_at=pd.Timestamp(stray, tz="UTC"), closed_at=pd.NaT
    )
    broken = tables.with_tables(opportunities=pd.concat([deals, odd], ignore_index=True))
    # when it is validated, then the date is named by table, column and the export's own span
    issue = only_error(broken)
    assert (issue.table, issue.column, issue.count) == ("opportunities", "created_at", 1)
    assert (
        issue.rule.startswith("dated between 1970-01-01 and 2027-") and stray in issue.examples[0]
    )
    # and quarantine takes that deal out, so the export's own time stays the bulk's
    held = quarantine(broken)
    assert held.deals["opportunity_id"].tolist() == ["O4"]
    assert export_time(last_event(held.tables)) < pd.Timestamp("2026-01-01", tz="UTC")
    # while a booked next step a few months ahead is a plausible fact
    ahead = tables.activities.assign(occurred_at=pd.Timestamp("2026-03-01", tz="UTC"))
    _, report = validate_tables(tables.with_tables(activities=ahead))
    assert report.ok, report.to_text()


def test_validation_keeps_typed_numbers_and_times_without_copying_them(tables):
    # given an export already in the contract's types
    typed, _ = validate_tables(tables)
    # when it is validated again
    again, report = validate_tables(typed)
    # then its number and time columns are the same arrays, not copies (on 17M activities each
    # copy is 130 MB), and the export given is as it was
    assert report.ok
    for name, column in (
        ("opportunities", "created_at"),
        ("opportunities", "closed_at"),
        ("opportunities", "amount"),
        ("activities", "occurred_at"),
        ("forecasts", "probability"),
    ):
        before, after = (_numbers(t.get(name)[column]) for t in (typed, again))
        assert np.shares_memory(before, after), (name, column)


def _numbers(values: pd.Series) -> np.ndarray:
    """The array under a column of numbers or times (times as their int64 microseconds)."""
    return values.array.asi8 if isinstance(values.dtype, pd.DatetimeTZDtype) else values.to_numpy()
