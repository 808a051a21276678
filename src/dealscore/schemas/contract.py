"""Validate a CRM export against the contract: per-table schemas plus cross-table rules.

`validate_tables` never raises on bad data: it returns the coerced tables and a report naming
table, column, rule, failing-row count and a few examples for every problem it found.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd
import pandera.pandas as pa

from dealscore.errors import DataError
from dealscore.schemas.keys import contains, duplicated, positions
from dealscore.schemas.tables import (
    TABLE_MODELS,
    TIMESTAMP_DTYPE,
    Accounts,
    Activities,
    Contacts,
    CrmTables,
    Forecasts,
    Opportunities,
    Owners,
    StageHistory,
    Status,
)

MAX_EXAMPLES = 5


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Issue:
    """One broken rule: where, what, how many rows and a few examples."""

    table: str
    column: str
    rule: str
    count: int
    examples: tuple[str, ...] = ()
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        examples = f" e.g. {', '.join(self.examples)}" if self.examples else ""
        rows = "row fails" if self.count == 1 else "rows fail"
        return f"{self.table}.{self.column}: {self.count:,} {rows} '{self.rule}'{examples}"


@dataclass(frozen=True)
class ValidationReport:
    issues: tuple[Issue, ...] = ()
    row_counts: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_text(self) -> str:
        lines = []
        for title, issues in (("errors", self.errors), ("warnings", self.warnings)):
            if issues:
                lines.append(f"{len(issues)} {title}:")
                lines.extend(f"  {i.severity.value.upper():7} {i}" for i in issues)
        return "\n".join(lines) if lines else "no problems found"


@dataclass(frozen=True)
class RowFailure:
    """The rows (index labels) of one table that break one rule: what quarantine drops."""

    table: str
    column: str
    rule: str
    rows: pd.Index


Rows = list[RowFailure] | None  # where the checks record failing rows, when asked to


class ContractError(DataError):
    """Raised by callers that need valid data and got an export with errors."""

    exit_code = 1  # the export, not the command, is at fault

    def __init__(self, report: ValidationReport, source: str = "the export"):
        self.report = report
        errors = "\n".join(f"  {i}" for i in report.errors)
        super().__init__(f"{source} breaks the data contract:\n{errors}")


def _examples(values: pd.Series) -> tuple[str, ...]:
    return tuple(str(v) for v in pd.unique(values.dropna())[:MAX_EXAMPLES])


def column_kind(dtype: object) -> str:
    """A contract dtype's kind: "timestamp", "number" or "string"."""
    text = str(dtype)
    if text.startswith("datetime64"):
        return "timestamp"
    if text.startswith(("float", "int")):
        return "number"
    return "string"


def to_utc_timestamps(values: pd.Series) -> pd.Series:
    """Parse to UTC timestamps; unparseable values become NaT."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype(TIMESTAMP_DTYPE)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC").astype(TIMESTAMP_DTYPE)
    if pd.api.types.is_numeric_dtype(values.dtype):
        # Numbers are not dates (epoch seconds or milliseconds? nobody can tell): read as text,
        # they fail the ISO 8601 parse and are named as unreadable.
        values = values.astype("string")
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    return parsed.astype(TIMESTAMP_DTYPE)


def to_strings(values: pd.Series) -> pd.Series:
    """Identifiers and labels as strings; integral floats lose their '.0', blanks become missing."""
    if pd.api.types.is_float_dtype(values.dtype):
        whole = values.dropna()
        if (whole == np.floor(whole)).all():
            values = values.astype("Int64")
    if pd.api.types.is_string_dtype(values.dtype):
        values = values.astype("str")
        blank = values == ""
        return values.where(~blank) if blank.any() else values  # no copy in the common case
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.map({True: "true", False: "false"}).astype("str")
    return values.astype("str").where(values.notna())


def _coerce_column(values: pd.Series, kind: str) -> pd.Series:
    if kind == "timestamp":
        return to_utc_timestamps(values)
    if kind == "number":
        return pd.to_numeric(values, errors="coerce").astype("float64")
    return to_strings(values)


def coerce_table(
    name: str, frame: pd.DataFrame, model: type[pa.DataFrameModel]
) -> tuple[pd.DataFrame, list[Issue], dict[str, pd.Index]]:
    """Coerce contract columns to their types; report values that cannot be parsed."""
    schema = model.to_schema()
    out = frame.copy(deep=False)
    issues: list[Issue] = []
    unparsed: dict[str, pd.Index] = {}
    for column, spec in schema.columns.items():
        if column not in frame:
            continue
        kind = column_kind(spec.dtype)
        coerced = _coerce_column(frame[column], kind)
        out[column] = coerced
        if coerced.isna().sum() == frame[column].isna().sum():
            continue  # the common case: nothing was lost, skip the row-wise comparison
        bad = frame[column].notna() & coerced.isna()
        if kind == "string":
            bad &= frame[column].astype("str") != ""  # blanks are missing values, not errors
        if bad.any():
            issues.append(
                Issue(
                    name,
                    column,
                    f"parseable as {kind}",
                    int(bad.sum()),
                    _examples(frame[column][bad]),
                )
            )
            unparsed[column] = frame.index[bad.to_numpy()]
    return out, issues, unparsed


# Frame-level checks report every column of a failing row; name the column each rule is about.
FRAME_RULE_COLUMNS: dict[str, list[str]] = {
    "closed_at_set_iff_closed": [Opportunities.closed_at, Opportunities.status],
    "closed_at_not_before_created_at": [Opportunities.closed_at, Opportunities.created_at],
    "linked_to_opportunity_or_account": [Activities.opportunity_id, Activities.account_id],
}


def _row_examples(frame: pd.DataFrame, index: pd.Index, columns: list[str]) -> tuple[str, ...]:
    rows = frame.loc[index[:MAX_EXAMPLES], [c for c in columns if c in frame]]
    return tuple(
        "{" + ", ".join(f"{c}={v}" for c, v in row.items()) + "}" for _, row in rows.iterrows()
    )


def _key_column(model: type[pa.DataFrameModel]) -> str:
    return next(iter(model.to_schema().columns))


@functools.cache
def _checked_here(model: type[pa.DataFrameModel]) -> tuple[pa.DataFrameSchema, tuple[str, ...]]:
    """(the model's schema without its unique flags, the columns declared unique): unique
    columns are checked by `keys.duplicated`, which is several times faster on millions of ids
    than Pandera's hash table; the flags stay declared for the Spark engine and the docs."""
    schema = model.to_schema()
    unique = tuple(column for column, spec in schema.columns.items() if spec.unique)
    return schema.update_columns({column: {"unique": False} for column in unique}), unique


def _unique_issues(
    name: str, frame: pd.DataFrame, columns: tuple[str, ...], rows: Rows
) -> list[Issue]:
    """An issue per unique column some value repeats in: every copy counts, as in Pandera."""
    issues = []
    for column in columns:
        if column not in frame:
            continue
        repeated = duplicated(frame[column])
        if repeated.any():
            issues.append(
                Issue(
                    name,
                    column,
                    "unique",
                    int(repeated.sum()),
                    _examples(frame.loc[repeated, column]),
                )
            )
            if rows is not None:
                rows.append(RowFailure(name, column, "unique", frame.index[repeated]))
    return issues


def schema_issues(
    name: str,
    frame: pd.DataFrame,
    model: type[pa.DataFrameModel],
    unparsed: dict[str, pd.Index],
    rows: Rows = None,
) -> tuple[pd.DataFrame, list[Issue]]:
    """Run the table's Pandera model lazily and fold its failure cases into issues (and, with
    `rows`, record the failing rows)."""
    schema, unique = _checked_here(model)
    try:
        validated = schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        issues = _unique_issues(name, frame, unique, rows)
        return (frame if issues else validated), issues
    issues = _rule_issues(name, frame, model, cases, unparsed, rows)
    return frame, issues + _unique_issues(name, frame, unique, rows)


def _rule_issues(
    name: str,
    frame: pd.DataFrame,
    model: type[pa.DataFrameModel],
    cases: pd.DataFrame,
    unparsed: dict[str, pd.Index],
    rows: Rows,
) -> list[Issue]:
    """Pandera's failure cases as issues, frame-level rules first (and the failing rows)."""
    issues: list[Issue] = []
    frame_level = cases["schema_context"] == "DataFrameSchema"
    for rule, group in cases[frame_level].groupby("check", sort=False):
        index = pd.Index(group["index"].dropna().unique())
        columns = FRAME_RULE_COLUMNS.get(str(rule), [])
        shown = [_key_column(model), *columns]
        if rows is not None:
            rows.append(RowFailure(name, "/".join(columns) or "*", str(rule), index))
        issues.append(
            Issue(
                name,
                "/".join(columns) or "*",
                str(rule),
                len(index),
                _row_examples(frame, index, shown),
            )
        )
    for (column, check), group in cases[~frame_level].groupby(["column", "check"], sort=False):
        if check == "not_nullable" and column in unparsed:
            # A value that failed to parse was already reported; only report genuine blanks.
            group = group[~group["index"].isin(unparsed[column])]
            if group.empty:
                continue
        rule = "unique" if check == "field_uniqueness" else str(check)
        issues.append(Issue(name, str(column), rule, len(group), _examples(group["failure_case"])))
        if rows is not None:
            rows.append(RowFailure(name, str(column), rule, pd.Index(group["index"].dropna())))
    return issues


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
                    _examples(keys[orphan]),
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
                        _row_examples(
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
                Issue(name, column, rule, int(bad.sum()), _examples(values[bad].astype(str)))
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
                    _examples(opportunities.loc[mask, Opportunities.opportunity_id]),
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


def validate_tables(tables: CrmTables, rows: Rows = None) -> tuple[CrmTables, ValidationReport]:
    """Coerce every present table to the contract and check all rules; never raises on bad data.

    With `rows`, the failing rows of every row-level error are recorded there too."""
    issues: list[Issue] = []
    checked: dict[str, pd.DataFrame] = {}
    complete = True
    for name, frame in tables.present():
        model = TABLE_MODELS[name]
        missing = missing_column_issues(name, frame.columns, len(frame))
        coerced, parse_issues, unparsed = coerce_table(name, frame, model)
        if missing:
            # The rules cannot be checked without the column; the columns that are there are
            # still typed (a summary must not add up amounts as text) and their values checked.
            complete = False
            issues.extend(missing)
            issues.extend(parse_issues)
            checked[name] = coerced
            continue
        if rows is not None:  # the parse issues name the rule; `unparsed` holds their rows
            rows.extend(
                RowFailure(name, i.column, i.rule, unparsed[i.column]) for i in parse_issues
            )
        validated, rule_issues = schema_issues(name, coerced, model, unparsed, rows)
        issues.extend(parse_issues + rule_issues)
        checked[name] = validated
    if complete:
        issues.extend(foreign_key_issues(checked, rows))
        issues.extend(timing_issues(checked, rows))
        issues.extend(date_issues(checked, rows))
        issues.extend(completeness_warnings(checked))
    report = ValidationReport(tuple(issues), {name: len(frame) for name, frame in checked.items()})
    return CrmTables.from_dict(checked), report


def require_valid(tables: CrmTables, source: str = "the export") -> CrmTables:
    """Validated tables, or a ContractError listing every error."""
    validated, report = validate_tables(tables)
    if not report.ok:
        raise ContractError(report, source)
    return validated


class UndatedExportError(DataError):
    """No deal of the export has a readable creation date: its own time cannot be known."""

    exit_code = 1  # the export, not the command, is at fault


UNDATED = "the export's own time cannot be known"


def require_dated(tables: CrmTables, report: ValidationReport | None = None) -> None:
    """UndatedExportError unless some deal has a readable `created_at`: without one, the
    export's own time (features.asof.export_time) cannot be known, nor anything scored as of it.

    `report` is the validation of the export as it came: with it, the error says why no date is
    left (the rows that could not be read, or the quarantine took every deal out). A missing
    column is not checked here: that is a table-level contract error of its own."""
    deals = tables.opportunities
    if Opportunities.created_at not in deals:
        return
    created = deals[Opportunities.created_at]
    if isinstance(created.dtype, pd.DatetimeTZDtype) and created.notna().any():
        return
    column = f"opportunities.{Opportunities.created_at}"
    rows = report.row_counts.get("opportunities", len(deals)) if report else len(deals)
    broken = [
        i
        for i in (report.errors if report else [])
        if i.table == "opportunities" and i.column == Opportunities.created_at
    ]
    if rows and broken and sum(i.count for i in broken) < rows:  # other rules took the rest
        broken = []
    if rows and report is not None and not broken:
        raise UndatedExportError(
            f"opportunities: none of the {rows:,} deals is left once the rows that break the "
            f"data contract are taken out (`dealscore validate` lists them): {UNDATED}"
        )
    shown = [e for i in broken for e in i.examples][:3]
    more = ", ..." if rows > len(shown) else ""
    examples = f" (e.g. {', '.join(repr(e) for e in shown)}{more})" if shown else ""
    why = ""
    if shown and all(e.lstrip("-").isdigit() for e in shown):
        why = (
            "; numbers are not read as dates: store ISO 8601 text (2025-01-31T09:30:00Z) or a "
            "timestamp column"
        )
    raise UndatedExportError(
        f"{column}: no readable date in {rows:,} rows{examples}{why}: {UNDATED}"
    )


@dataclass(frozen=True)
class Quarantined:
    """An export with every row that breaks a row rule taken out, and the deals it touched."""

    tables: CrmTables  # valid: what is left
    # One row per opportunities row taken out (a repeated id twice, a missing id too):
    # opportunity_id (missing when the export has none), row (its 1-based position in the
    # export's opportunities table), created_at and closed_at where they can be trusted (empty
    # when unreadable or when the row broke a rule on them, or on the status), reason.
    deals: pd.DataFrame
    dropped: dict[str, int]  # rows taken out per table
    report: ValidationReport  # the export as it came: every problem, as `validate` says

    @property
    def share(self) -> float:
        """The share of the export's deals taken out."""
        total = len(self.tables.opportunities) + len(self.deals)
        return len(self.deals) / total if total else 0.0

    def describe(self) -> str:
        """What was taken out, by table and by rule: "" when nothing was."""
        if self.deals.empty:
            return ""
        rows = ", ".join(f"{n:,} {name} rows" for name, n in self.dropped.items() if n)
        rules = "; ".join(
            f"{rule} ({n:,} deal{'s' if n > 1 else ''})"
            for rule, n in self.deals["reason"].value_counts().items()
        )
        return (
            f"quarantined {rows} ({len(self.deals):,} deals) that break the data contract: "
            f"{rules}; `validate` lists them"
        )


def _touched_deals(tables: CrmTables, table: str, bad: pd.DataFrame) -> pd.Series:
    """The deals whose features a broken row would make wrong."""
    deals = tables.opportunities
    if Opportunities.opportunity_id in bad and table != "contacts":
        ids = bad[Opportunities.opportunity_id].dropna()
    else:
        ids = pd.Series(dtype=object)
    if table in ("accounts", "activities") and Accounts.account_id in bad:
        no_deal = (
            bad[Activities.opportunity_id].isna()
            if table == "activities"
            else pd.Series(True, index=bad.index)
        )
        accounts = bad.loc[no_deal, Accounts.account_id].dropna()
        if Opportunities.account_id in deals:
            mask = contains(deals[Opportunities.account_id], accounts)
            ids = pd.concat([ids, deals.loc[mask, Opportunities.opportunity_id]])
    if table == "owners" and Opportunities.owner_id in deals:
        mask = contains(deals[Opportunities.owner_id], bad[Owners.owner_id])
        ids = pd.concat([ids, deals.loc[mask, Opportunities.opportunity_id]])
    if table == "contacts" and tables.activities is not None:
        acts = tables.activities
        touched = acts[contains(acts[Activities.contact_id], bad[Contacts.contact_id])]
        ids = pd.concat([ids, touched[Activities.opportunity_id].dropna()])
    return ids.astype(str).drop_duplicates()


# A deal's own row that breaks a rule on one of these columns cannot say when it was created, or
# whether (and when) it closed: a broken status leaves a close date unexplained.
UNTRUSTED_DATES: dict[str, tuple[str, ...]] = {
    Opportunities.created_at: (Opportunities.created_at,),
    Opportunities.closed_at: (Opportunities.closed_at, Opportunities.status),
}


class _OwnRows:
    """The opportunities rows that broke a rule themselves: their first reason, and which of
    their dates cannot be trusted."""

    def __init__(self) -> None:
        self.reasons: list[pd.Series] = []
        self.untrusted = {column: pd.Index([]) for column in UNTRUSTED_DATES}

    def add(self, failure: RowFailure, rows: pd.Index, reason: str) -> None:
        self.reasons.append(pd.Series(reason, index=rows, dtype=object))
        columns = failure.column.split("/")
        for date, rules_on in UNTRUSTED_DATES.items():
            if any(c in columns for c in rules_on):
                self.untrusted[date] = self.untrusted[date].union(rows)

    def taken_out(
        self, export: pd.DataFrame, kept: pd.DataFrame, reasons: dict[str, str]
    ) -> pd.DataFrame:
        """Each row of the export's opportunities that is not kept, with its position, the dates
        that can be trusted and the reason: by its id's first reason, else by its own row's."""
        out = ~export.index.isin(kept.index)
        taken = export[out]
        ids = taken[Opportunities.opportunity_id]
        by_row = pd.concat(self.reasons) if self.reasons else pd.Series(dtype=object)
        by_row = by_row[~by_row.index.duplicated()]
        reason = ids.map(reasons).fillna(by_row.reindex(taken.index))
        dates = {
            date: taken[date].where(~taken.index.isin(self.untrusted[date]))
            for date in UNTRUSTED_DATES
        }
        return pd.DataFrame(
            {
                Opportunities.opportunity_id: ids,
                "row": np.flatnonzero(out) + 1,
                **dates,
                "reason": reason,
            }
        ).reset_index(drop=True)


def quarantine(tables: CrmTables, rounds: int = 4) -> Quarantined:
    """Take out every row that breaks a row rule (a value, a key, a link, a date after the
    close) and every row of each deal it touches, until the rest is valid.

    Table-level errors (a required column missing) cannot be quarantined: ContractError."""
    rows: list[RowFailure] = []
    checked, now = validate_tables(tables, rows)
    first, report = checked, now  # the export as it came; a valid one is checked once only
    reasons: dict[str, str] = {}
    own = _OwnRows()
    dropped = {name: 0 for name, _ in tables.present()}
    for _ in range(rounds):
        if now.ok:
            deals = own.taken_out(first.opportunities, checked.opportunities, reasons)
            return Quarantined(checked, deals, dropped, report)
        if not rows:
            raise ContractError(now)
        bad_rows: dict[str, pd.Index] = {}
        for failure in rows:
            frame = checked.get(failure.table)
            assert frame is not None  # a failure names a table the export has
            bad = frame.loc[frame.index.intersection(failure.rows)]
            reason = f"{failure.table}.{failure.column}: {failure.rule}"
            for deal in _touched_deals(checked, failure.table, bad):
                reasons.setdefault(deal, reason)
            if failure.table == "opportunities":
                own.add(failure, bad.index, reason)
            bad_rows[failure.table] = bad_rows.get(failure.table, pd.Index([])).union(bad.index)
        kept = {}
        for name, frame in checked.present():
            keep = ~frame.index.isin(bad_rows.get(name, pd.Index([])))
            if Opportunities.opportunity_id in frame and name != "contacts":
                keep &= ~contains(frame[Opportunities.opportunity_id], pd.Index(list(reasons)))
            dropped[name] += int((~keep).sum())
            kept[name] = frame[keep]
        # What is left is checked again from scratch: dropping rows can orphan others.
        rows = []
        checked, now = validate_tables(CrmTables.from_dict(kept), rows)
    raise ContractError(now)
