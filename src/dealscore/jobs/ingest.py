"""Jobs: validate an export, and ingest a raw export into contract tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dealscore.io import read_export, write_tables
from dealscore.io.secrets import redact
from dealscore.io.write import TableFormat
from dealscore.progress import Progress, silent
from dealscore.schemas import ContractError, CrmTables, ValidationReport, validate_tables
from dealscore.summary import CrmSummary, summarise


@dataclass(frozen=True)
class ValidateResult:
    tables: CrmTables
    report: ValidationReport
    summary: CrmSummary | None  # None when the tables are too broken to summarise
    source: str
    notes: list[str]


def run_validate(
    src: str | Path, mapping: str | Path | None = None, progress: Progress = silent
) -> ValidateResult:
    """Read (through a mapping, if given) and validate; never raises on bad data."""
    progress(f"reading {redact(str(src))}" + (f" through mapping {mapping}" if mapping else ""))
    export = read_export(src, mapping)
    rows = sum(len(frame) for _, frame in export.tables.present())
    progress(f"validating {len(list(export.tables.present()))} tables, {rows:,} rows")
    tables, report = validate_tables(export.tables)
    try:
        summary = summarise(tables)
    except (KeyError, TypeError, AttributeError):
        summary = None
    return ValidateResult(tables, report, summary, export.source, export.notes)


@dataclass(frozen=True)
class IngestResult:
    validation: ValidateResult
    files: list[Path]


def run_ingest(
    src: str | Path,
    out: Path,
    mapping: str | Path | None = None,
    fmt: TableFormat = "parquet",
    progress: Progress = silent,
) -> IngestResult:
    """Translate and validate an export; write the contract tables only if there is no error."""
    validation = run_validate(src, mapping, progress)
    if not validation.report.ok:
        raise ContractError(validation.report, validation.source)
    progress(f"writing {fmt} tables to {out}")
    return IngestResult(validation, write_tables(validation.tables, out, fmt))
