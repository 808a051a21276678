"""Job: generate a synthetic CRM export and write it as contract tables plus a truth file."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from dealscore.io.write import TableFormat, write_frame, write_tables
from dealscore.progress import Progress
from dealscore.summary import CrmSummary, summarise
from dealscore.synthetic import GeneratorSettings, generate_crm

TRUTH_FILE = "truth.parquet"


@dataclass(frozen=True)
class GenerateResult:
    out: Path
    files: list[Path]
    truth: Path
    summary: CrmSummary
    seconds: float


def run_generate(
    settings: GeneratorSettings,
    out: Path,
    fmt: TableFormat = "parquet",
    progress: Progress = print,
) -> GenerateResult:
    """Generate, then write each table atomically; the truth file sits beside them, unread by the pipeline."""
    started = time.perf_counter()
    crm = generate_crm(settings, progress)
    progress(f"writing {fmt} tables to {out}")
    files = write_tables(crm.tables, out, fmt)
    truth = write_frame(crm.truth, out / TRUTH_FILE)
    return GenerateResult(out, files, truth, summarise(crm.tables), time.perf_counter() - started)
