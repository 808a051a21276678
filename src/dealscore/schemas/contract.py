"""Validate a CRM export against the contract: per-table schemas plus cross-table rules.

`validate_tables` never raises on bad data: it returns the coerced tables and a report naming
table, column, rule, failing-row count and a few examples for every problem it found.
"""

from __future__ import annotations

import functools

import pandas as pd
import pandera.pandas as pa

from dealscore.errors import DataError
from dealscore.schemas.coerce import coerce_table, column_kind
from dealscore.schemas.cross_table import (
    completeness_warnings,
    date_issues,
    foreign_key_issues,
    missing_column_issues,
    timing_issues,
)
from dealscore.schemas.keys import duplicated
from dealscore.schemas.report import (
    ContractError,
    Issue,
    RowFailure,
    Rows,
    ValidationReport,
    row_examples,
    value_examples,
)
from dealscore.schemas.tables import TABLE_MODELS, Activities, CrmTables, Opportunities

# Frame-level checks report every column of a failing row; name the column each rule is about.
FRAME_RULE_COLUMNS: dict[str, list[str]] = {
    "closed_at_set_iff_closed": [Opportunities.closed_at, Opportunities.status],
    "closed_at_not_before_created_at": [Opportunities.closed_at, Opportunities.created_at],
    "linked_to_opportunity_or_account": [Activities.opportunity_id, Activities.account_id],
}


def _key_column(model: type[pa.DataFrameModel]) -> str:
    return next(iter(model.to_schema().columns))


@functools.cache
def _checked_here(model: type[pa.DataFrameModel]) -> tuple[pa.DataFrameSchema, tuple[str, ...]]:
    """(the model's schema without its unique flags, the columns declared unique): unique
    columns are checked by `keys.duplicated`, which is several times faster on millions of ids
    than Pandera's hash table; the flags stay declared for the Spark engine and the docs.

    Time columns come parsed to the contract's dtype by `coerce_table`: Pandera only checks
    their dtype, as its coercion (to_datetime again) copied 17M times per column."""
    schema = model.to_schema()
    unique = tuple(column for column, spec in schema.columns.items() if spec.unique)
    changes: dict[str, dict[str, bool]] = {
        column: {"coerce": column_kind(spec.dtype) != "timestamp"}
        for column, spec in schema.columns.items()
    }
    for column in unique:
        changes[column]["unique"] = False
    schema = schema.update_columns(changes)
    schema.coerce = False  # column by column instead, as set above
    return schema, unique


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
                    value_examples(frame.loc[repeated, column]),
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
    labels = [
        c for c in schema.columns if c in frame and isinstance(frame[c].dtype, pd.CategoricalDtype)
    ]
    if labels:  # kept categorical by coerce_table: their values are checked, not their dtype
        schema = schema.update_columns({c: {"dtype": None, "coerce": False} for c in labels})
    try:
        # In place on a shallow copy of our own: Pandera's copy duplicated every numeric and
        # time column (half a GB on a million deals), and the caller's frame stays as it was.
        validated = schema.validate(frame.copy(deep=False), lazy=True, inplace=True)
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
                row_examples(frame, index, shown),
            )
        )
    for (column, check), group in cases[~frame_level].groupby(["column", "check"], sort=False):
        if check == "not_nullable" and column in unparsed:
            # A value that failed to parse was already reported; only report genuine blanks.
            group = group[~group["index"].isin(unparsed[column])]
            if group.empty:
                continue
        rule = "unique" if check == "field_uniqueness" else str(check)
        issues.append(
            Issue(name, str(column), rule, len(group), value_examples(group["failure_case"]))
        )
        if rows is not None:
            rows.append(RowFailure(name, str(column), rule, pd.Index(group["index"].dropna())))
    return issues


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
