"""Feature pipeline speed and memory: (a) 1M open deals as of one date, (b) 2M training snapshots.

    .venv/bin/python benchmarks/features.py --deals 1000000

(a) re-times a generated CRM so every deal is open at one as_of: each deal, with all its rows,
is shifted so as_of falls 60-100% through its life, and rows dated at or after as_of are dropped.
Targets (issue 3): (a) within 60 s and 8 GiB on 2 cores. Forecasts are not read by features and
are dropped to keep the measurement about features.

Beside each, in the same run, a DuckDB reference (duckdb_reference.py): the engagement family's
windowed counts, days since the last activity, activity trend and distinct contacts written in
SQL over the same snapshots. Printed: our engagement features (snapshots_at + engagement_features,
the comparable work) and the whole build_features, each over the DuckDB query's time (its SQL and
fetching the result as Arrow; registering the frames is timed apart and not counted). Every run
checks that DuckDB's values equal ours on every snapshot (counts exactly, days within 1e-9) and
exits with an error if they do not.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

import duckdb_reference as reference
from measure import GIB, Recorder

from dealscore.features import SnapshotSettings, build_features, fit_feature_state
from dealscore.features.build import snapshots_at
from dealscore.features.engagement import engagement_features
from dealscore.features.snapshots import grid_snapshots
from dealscore.schemas import CrmTables
from dealscore.synthetic import GeneratorSettings, generate_crm

EXPORT = pd.Timestamp("2026-11-01", tz="UTC")


def all_open_at(
    tables: CrmTables, as_of: pd.Timestamp, seed: int, forecasts: bool = False
) -> CrmTables:
    """Shift each deal (and its rows) so it is open at as_of; drop what would lie in the future."""
    deals = tables.opportunities
    end = deals["closed_at"].fillna(EXPORT)
    life = end - deals["created_at"]
    fraction = np.random.default_rng(seed).uniform(0.6, 1.0, len(deals))
    shift = (as_of - life * fraction) - deals["created_at"]
    moved = deals.assign(created_at=deals["created_at"] + shift, status="open")
    moved["closed_at"] = pd.Series(pd.NaT, index=deals.index, dtype=deals["closed_at"].dtype)
    shift.index = deals["opportunity_id"].to_numpy()

    def shifted(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        by_deal = frame["opportunity_id"].map(shift).fillna(pd.Timedelta(0))
        frame = frame.assign(**{c: frame[c] + by_deal.to_numpy() for c in columns})
        return frame[frame[columns[0]] < as_of]

    return tables.with_tables(
        opportunities=moved,
        stage_history=shifted(tables.stage_history, ["changed_at", "close_date"]),
        activities=shifted(tables.activities, ["occurred_at"]),
        forecasts=shifted(tables.forecasts, ["submitted_at"]) if forecasts else None,
    )


def compare_with_duckdb(
    recorder: Recorder, case: str, tables: CrmTables, as_of: pd.Timestamp | pd.DataFrame
) -> tuple[float, float]:
    """Our engagement features and the DuckDB reference on the same snapshots, timed one after
    the other; checks they agree. Returns (our seconds, DuckDB seconds)."""
    with recorder.step(f"{case} engagement features") as step:
        snaps = snapshots_at(tables, as_of)
        ours = engagement_features(tables, snaps)
        step.rows = len(ours)
    started = time.perf_counter()
    activities = reference.activity_table(tables.activities)
    con = reference.connect(activities, reference.snapshot_table(snaps))
    registering = time.perf_counter() - started
    with recorder.step(f"{case} DuckDB engagement") as step:
        result = reference.run(con, activities.column_names)
        step.rows = result.num_rows
    threads = con.sql("SELECT current_setting('threads')").fetchall()[0][0]
    con.close()
    print(
        f"{case} DuckDB: {threads} threads; registering the frames took {registering:.3f} s "
        "(not counted)"
    )
    problems = reference.mismatches(ours, reference.to_frame(result))
    if problems:
        sys.exit(f"{case} DuckDB and ours differ:\n  " + "\n  ".join(problems))
    print(
        f"{case} check: DuckDB equals ours on all {len(ours):,} snapshots x "
        f"{len(reference.COLUMNS)} columns (counts exactly, days within 1e-9)"
    )
    return recorder.steps[-2].seconds, recorder.steps[-1].seconds


def ratios(case: str, ours: float, whole: float, duck: float) -> None:
    print(
        f"{case} ours / DuckDB: engagement features {ours:.2f} s / {duck:.2f} s = {ours / duck:.2f}x;"
        f" all features (build_features) {whole:.2f} s / {duck:.2f} s = {whole / duck:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--snapshots", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    recorder = Recorder()
    print(f"generating {args.deals:,} deals (not measured)")
    crm = generate_crm(
        GeneratorSettings(
            deals=args.deals, seed=args.seed, export_date=EXPORT, activities_per_deal=28
        )
    )
    tables = crm.tables.with_tables(forecasts=None)
    del crm

    as_of = EXPORT
    state = fit_feature_state(tables, as_of)
    grid = grid_snapshots(tables.opportunities, EXPORT, SnapshotSettings(seed=args.seed), 90)
    snaps = grid.sample(n=min(args.snapshots, len(grid)), random_state=args.seed)
    print(
        f"(b) {len(snaps):,} training snapshots (drawn from {len(grid):,} on the weekly grid), "
        f"{len(tables.activities):,} activities"
    )
    with recorder.step("(b) training features") as step:
        trained = build_features(tables, snaps[["opportunity_id", "as_of"]], state)
        step.rows = len(trained)
    del trained
    whole_b = recorder.steps[-1].seconds
    ours_b, duck_b = compare_with_duckdb(
        recorder, "(b)", tables, snaps[["opportunity_id", "as_of"]]
    )
    del snaps

    # (a) holds only its own data: the re-timed CRM.
    open_tables = all_open_at(tables, as_of, args.seed)
    del tables
    print(
        f"(a) {len(open_tables.opportunities):,} open deals, {len(open_tables.activities):,} activities, as of {as_of:%Y-%m-%d}"
    )
    with recorder.step("(a) scoring features") as step:
        scored = build_features(open_tables, as_of, state)
        step.rows = len(scored)
    del scored
    whole_a = recorder.steps[-1].seconds
    ours_a, duck_a = compare_with_duckdb(recorder, "(a)", open_tables, as_of)
    for s in recorder.steps:
        print(
            f"{s.name}: {s.seconds:.1f} s, {s.rows / s.seconds:,.0f} rows/s, peak RSS {s.rss_peak / GIB:.2f} GiB"
        )
    print("target (a): within 60 s and 8 GiB")
    ratios("(a)", ours_a, whole_a, duck_a)
    ratios("(b)", ours_b, whole_b, duck_b)
    print("target (a) and (b): within 1.5x of the same features in DuckDB SQL")


if __name__ == "__main__":
    main()
