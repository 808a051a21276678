"""Job: build the feature frame of an export as of a date and write it to Parquet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dealscore.features import FeatureState, build_features, fit_feature_state
from dealscore.features.asof import export_time, last_event, stale_as_of
from dealscore.io import read_valid, write_frame
from dealscore.io.icp import load_icp
from dealscore.progress import Progress, silent


@dataclass(frozen=True)
class FeaturesResult:
    frame: pd.DataFrame
    state: FeatureState
    out: Path
    as_of: pd.Timestamp


def run_build_features(
    data: str | Path,
    as_of: pd.Timestamp | None,
    out: Path,
    mapping: str | Path | None = None,
    icp: str | Path | None = None,
    progress: Progress = silent,
) -> FeaturesResult:
    """Read and validate the export, fit the feature state before as_of, build, write. No
    as_of: the export's own time, as in score, compare and report."""
    tables = read_valid(data, mapping, progress)
    now = export_time(last_event(tables))
    as_of = now if as_of is None else as_of
    if warning := stale_as_of(as_of, now):
        progress(f"WARNING: {warning}")
    state = fit_feature_state(tables, as_of, load_icp(icp))
    progress(f"building features as of {as_of:%Y-%m-%d %H:%M} UTC")
    frame = build_features(tables, as_of, state)
    progress(f"writing {len(frame):,} rows to {out}")
    write_frame(frame, out)
    return FeaturesResult(frame, state, out, as_of)
