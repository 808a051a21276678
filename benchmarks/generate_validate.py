"""Generate a synthetic CRM, write it, read it back and validate it; print each step's cost.

    .venv/bin/python benchmarks/generate_validate.py --deals 1000000

Targets (issue 2): 1M deals with about 20M activities in minutes, within 8 GiB.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from measure import GIB, Recorder

from dealscore.io import read_export, write_tables
from dealscore.schemas import validate_tables
from dealscore.synthetic import GeneratorSettings, generate_crm


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the tables (default: a temporary folder)",
    )
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="dealscore-bench-"))
    settings = GeneratorSettings(
        deals=args.deals, seed=args.seed, export_date=pd.Timestamp("2026-11-01", tz="UTC")
    )
    recorder = Recorder()
    print(f"{args.deals:,} deals -> {out}")

    with recorder.step("generate") as step:
        crm = generate_crm(settings)
        step.rows = sum(len(frame) for _, frame in crm.tables.present())
    sizes = {name: len(frame) for name, frame in crm.tables.present()}
    with recorder.step("write parquet") as step:
        write_tables(crm.tables, out)
        step.rows = sum(sizes.values())
    del crm
    with recorder.step("read parquet") as step:
        tables = read_export(out).tables
        step.rows = sum(sizes.values())
    with recorder.step("validate") as step:
        _validated, report = validate_tables(tables)
        step.rows = sum(sizes.values())
    print("rows: " + ", ".join(f"{name} {count:,}" for name, count in sizes.items()))
    print(f"validation: {len(report.errors)} errors, {len(report.warnings)} warnings")
    total = sum(s.seconds for s in recorder.steps)
    peak = max(s.rss_peak for s in recorder.steps)
    print(f"total {total:.1f} s, peak RSS {peak / GIB:.2f} GiB (target: minutes, 8 GiB)")
    if not report.ok:
        print(report.to_text())
        sys.exit(1)


if __name__ == "__main__":
    main()
