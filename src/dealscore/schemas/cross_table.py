"""The rules across tables (foreign keys, the timing of a deal's events, plausible dates,
completeness) and the table-level rule that a required column is present."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import pandas as pd

from dealscore.schemas.keys import contains, positions
from dealscore.schemas.report import Issue, RowFailure, Rows, Severity, row_examples, value_examples
from dealscore.schemas.tables import (
    TABLE_MODELS,
    Accounts,
    Activities,
    Contacts,
    Forecasts,
    Opportunities,
    Owners,
    StageHistory,
    Status,
)


@dataclass(frozen=True)
class ForeignKey:
    child: str
    column: str
    parent: str
    parent_column: str

    @property
    def rule(self) -> str:
        """The rule's name in a report."""
        return f"foreign key: exists in {self.parent}.{self.parent_column}"


FOREIGN_KEYS: tuple[ForeignKey, ...] = (
    ForeignKey("opportunities", Opportunities.account_id, "accounts", Accounts.account_id),
    ForeignKey("opportunities", Opportunities.owner_id, "owners", Owners.owner_id),
    ForeignKey(
        "stage_history", StageHistory.opportunity_id, "opportunities", Opportunities.opportunity_id
    ),
    ForeignKey(
        "activities", Activities.opportunity_id, "opportunities", Opportunities.opportunity_id
    ),
    ForeignKey("activities", Activities.account_id, "accounts", Accounts.account_id),
    ForeignKey("activities", Activities.contact_id, "contacts", Contacts.contact_id),
    ForeignKey("contacts", Contacts.account_id, "accounts", Accounts.account_id),
    ForeignKey(
        "forecasts", Forecasts.opportunity_id, "opportunities", Opportunities.opportunity_id
    ),
    ForeignKey("owners", Owners.manager_id, "owners", Owners.owner_id),
)


def foreign_key_issues(tables: dict[str, pd.DataFrame], rows: Rows = None) -> list[Issue]:
    issues = []
    for fk in FOREIGN_KEYS:
        child, parent = tables.get(fk.child), tables.get(fk.parent)
        if (
            child is None
            or parent is None
            or fk.column not in child
            or fk.parent_column not in parent
        ):
            continue
        keys = child[fk.column]
        orphan = keys.notna().to_numpy() & ~contains(keys, parent[fk.parent_column])
        if orphan.any():
            if rows is not None:
                rows.append(RowFailure(fk.child, fk.column, fk.rule, child.index[orphan]))
            issues.append(
                Issue(
                    fk.child,
                    fk.column,
                    fk.rule,
                    int(orphan.sum()),
                    value_examples(keys[orphan]),
                )
            )
    return issues


# Rows of these tables are snapshots of a deal's life: none may be dated after it closed.
DEAL_EVENT_TIMES: dict[str, str] = {
    "stage_history": StageHistory.changed_at,
    "forecasts": Forecasts.submitted_at,
}
AFTER_CLOSE = "not after the deal closed"  # an error: the row would leak the outcome
# Two fields of one CRM save can differ by a second or so (Salesforce's LastStageChangeDate and
# the closing OpportunityHistory row): a row this close after the close is the close itself.
CLOSE_SKEW = pd.Timedelta(seconds=60)
BEFORE_CREATE = "not before the deal was created"  # a warning: CRMs backfill
TIMING_SEVERITY: dict[str, Severity] = {
    AFTER_CLOSE: Severity.ERROR,
    BEFORE_CREATE: Severity.WARNING,
}


def timing_issues(tables: dict[str, pd.DataFrame], rows: Rows = None) -> list[Issue]:
    opportunities = tables["opportunities"]
    deals = opportunities.set_index(Opportunities.opportunity_id)[
        [Opportunities.created_at, Opportunities.closed_at]
    ]
    deals = deals[~deals.index.duplicated()]
    issues = []
    for name, time_column in DEAL_EVENT_TIMES.items():
        events = tables.get(name)
        if events is None or time_column not in events:
            continue
        # The deal's dates beside each row of a known deal (an inner join, by position).
        where = positions(events[StageHistory.opportunity_id], deals.index)
        joined = events.loc[where >= 0, [StageHistory.opportunity_id, time_column]]
        joined = joined.assign(
            **{
                column: pd.Series(deals[column].array.take(where[where >= 0]), index=joined.index)
                for column in deals.columns
            }
        )
        after_close = joined[time_column] > joined[Opportunities.closed_at] + CLOSE_SKEW
        before_create = joined[time_column] < joined[Opportunities.created_at]
        if rows is not None and after_close.any():
            rows.append(
                RowFailure(name, time_column, AFTER_CLOSE, joined.index[after_close.to_numpy()])
            )
        for mask, rule in ((after_close, AFTER_CLOSE), (before_create, BEFORE_CREATE)):
            if mask.any():
                issues.append(
                    Issue(
                        name,
                        time_column,
                        rule,
                        int(mask.sum()),
                        row_examples(
                            joined, joined.index[mask.to_numpy()], joined.columns.tolist()
                        ),
                        TIMING_SEVERITY[rule],
                    )
                )
    return issues


# A fact dated far from the export's bulk is a typo or a placeholder (2099-12-31, 0001-01-01),
# not history: left in, it would become the export's own time and every deal would be scored
# as of it. The bounds come from the export itself: its deals' creation dates.
EARLIEST_PLAUSIBLE = pd.Timestamp("1970-01-01", tz="UTC")  # older than any CRM
BULK_QUANTILE = 0.99  # the bulk's end: one stray row in a hundred cannot move it
PLAUSIBLE_AFTER_BULK = pd.Timedelta(days=2 * 365)  # next steps and closes run ahead, not years
NOT_DATED = {Opportunities.close_date}  # a plan, not a fact: a close date may lie far ahead


def plausible_bounds(tables: dict[str, pd.DataFrame]) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """(earliest, latest) time a fact of this export may carry; None without creation dates."""
    created = tables["opportunities"][Opportunities.created_at].dropna()
    created = created[created >= EARLIEST_PLAUSIBLE]
    if created.empty:
        return None
    bulk = created.quantile(BULK_QUANTILE, interpolation="lower")
    return EARLIEST_PLAUSIBLE, bulk + PLAUSIBLE_AFTER_BULK


def date_issues(tables: dict[str, pd.DataFrame], rows: Rows = None) -> list[Issue]:
    """Rows dated before 1970 or more than two years after the bulk of the export's deals were
    created: errors, so quarantine takes them out with their deals."""
    bounds = plausible_bounds(tables)
    if bounds is None:
        return []
    earliest, latest = bounds
    rule = f"dated between {earliest:%Y-%m-%d} and {latest:%Y-%m-%d} (the export's own span)"
    issues = []
    for name, frame in tables.items():
        for column in frame.columns:
            if column in NOT_DATED or not isinstance(frame[column].dtype, pd.DatetimeTZDtype):
                continue
            values = frame[column]
            bad = (values < earliest) | (values > latest)
            if not bad.any():
                continue
            if rows is not None:
                rows.append(RowFailure(name, column, rule, frame.index[bad.to_numpy()]))
            issues.append(
                Issue(name, column, rule, int(bad.sum()), value_examples(values[bad].astype(str)))
            )
    return issues


def completeness_warnings(tables: dict[str, pd.DataFrame]) -> list[Issue]:
    opportunities = tables["opportunities"]
    if Opportunities.account_id not in opportunities:
        return []
    issues = []
    no_account = opportunities[Opportunities.account_id].isna()
    is_open = opportunities[Opportunities.status] == Status.OPEN
    for mask, what in ((no_account & is_open, "open"), (no_account & ~is_open, "closed")):
        if mask.any():
            issues.append(
                Issue(
                    "opportunities",
                    Opportunities.account_id,
                    f"{what} deal has an account",
                    int(mask.sum()),
                    value_examples(opportunities.loc[mask, Opportunities.opportunity_id]),
                    Severity.WARNING,
                )
            )
    return issues


REQUIRED = "required column present"


def missing_column_issues(name: str, columns: Collection[str], rows: int) -> list[Issue]:
    """An issue per column the table's contract requires and `columns` lacks."""
    schema = TABLE_MODELS[name].to_schema()
    return [
        Issue(name, column, REQUIRED, rows)
        for column, spec in schema.columns.items()
        if spec.required and column not in columns
    ]
