"""Job: generate a synthetic CRM export and write it as contract tables plus a truth file."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from dealscore.io.truth import write_truth
from dealscore.io.write import TableFormat, write_tables
from dealscore.progress import Progress
from dealscore.summary import CrmSummary, summarise
from dealscore.synthetic import GeneratorSettings, generate_crm


@dataclass(frozen=True)
class GenerateResult:
    out: Path
    files: list[Path]
    truth: list[Path]
    summary: CrmSummary
    seconds: float


def run_generate(
    settings: GeneratorSettings,
    out: Path,
    fmt: TableFormat = "parquet",
    progress: Progress = print,
) -> GenerateResult:
    """Generate, then write each table atomically; the truth files sit beside them, unread by the pipeline."""
    started = time.perf_counter()
    crm = generate_crm(settings, progress)
    progress(f"writing {fmt} tables to {out}")
    files = write_tables(crm.tables, out, fmt)
    truth = write_truth(crm, settings, out)
    return GenerateResult(out, files, truth, summarise(crm.tables), time.perf_counter() - started)
