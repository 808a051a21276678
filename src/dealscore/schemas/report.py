"""What a validation reports: each broken rule as an issue (table, column, rule, count, a few
examples), the report of an export, the failing rows quarantine drops, and the error raised on an
export with errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pandas as pd

from dealscore.errors import DataError

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


def value_examples(values: pd.Series) -> tuple[str, ...]:
    """A few distinct values, as text, to show beside an issue."""
    return tuple(str(v) for v in pd.unique(values.dropna())[:MAX_EXAMPLES])


def row_examples(frame: pd.DataFrame, index: pd.Index, columns: list[str]) -> tuple[str, ...]:
    """A few rows, as `{column=value, ...}`, to show beside an issue about whole rows."""
    rows = frame.loc[index[:MAX_EXAMPLES], [c for c in columns if c in frame]]
    return tuple(
        "{" + ", ".join(f"{c}={v}" for c, v in row.items()) + "}" for _, row in rows.iterrows()
    )
