"""Feature pipeline speed and memory: (a) 1M open deals as of one date, (b) 2M training snapshots.

    .venv/bin/python benchmarks/features.py --deals 1000000

(a) re-times a generated CRM so every deal is open at one as_of: each deal, with all its rows,
is shifted so as_of falls 60-100% through its life, and rows dated at or after as_of are dropped.
Targets (issue 3): (a) within 60 s and 8 GiB on 2 cores. Forecasts are not read by features and
are dropped to keep the measurement about features.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from measure import GIB, Recorder

from dealscore.features import SnapshotSettings, build_features, fit_feature_state
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
    del trained, snaps

    # (a) holds only its own data: the re-timed CRM.
    open_tables = all_open_at(tables, as_of, args.seed)
    del tables
    print(
        f"(a) {len(open_tables.opportunities):,} open deals, {len(open_tables.activities):,} activities, as of {as_of:%Y-%m-%d}"
    )
    with recorder.step("(a) scoring features") as step:
        scored = build_features(open_tables, as_of, state)
        step.rows = len(scored)
    for s in recorder.steps:
        print(
            f"{s.name}: {s.seconds:.1f} s, {s.rows / s.seconds:,.0f} rows/s, peak RSS {s.rss_peak / GIB:.2f} GiB"
        )
    print("target (a): within 60 s and 8 GiB")


if __name__ == "__main__":
    main()
