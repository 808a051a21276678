"""Job: read the scores written so far and the export's outcomes, and say how the scores did
(pipeline.monitor): per night, month, band and model version, pooled, with what is pending."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
import pydantic.dataclasses
from pydantic import Field

from dealscore.errors import InputError
from dealscore.features.asof import export_time, last_event
from dealscore.io import read_export
from dealscore.io.scores import open_store, store_exists
from dealscore.io.secrets import redact
from dealscore.io.write import write_frame
from dealscore.pipeline.monitor import (
    GONE,
    Realised,
    monitor_table,
    realised,
    scored_outcomes,
    state_counts,
)
from dealscore.pipeline.scoring import ScoreSettings
from dealscore.progress import Progress, silent
from dealscore.schemas.contract import require_dated
from dealscore.schemas.features import OPPORTUNITY_ID
from dealscore.schemas.quarantine import quarantine
from dealscore.settings import SETTINGS, UtcTime, default
from dealscore.tracking.registry import model_name


@pydantic.dataclasses.dataclass(frozen=True, config=SETTINGS)
class MonitorSettings:
    scores: str = default(ScoreSettings, "out")  # where `score` wrote: a URL or a folder
    format: Literal["parquet", "csv"] = "parquet"  # of a folder store
    model_name: str = ""  # "": the export's own registered model; "*": every model
    # For rows written before scores kept their horizon: the models' label window in days.
    horizon_days: Annotated[float, Field(gt=0)] | None = None
    nights: Annotated[int, Field(ge=1)] = 28  # the champion's last elapsed nights, for retraining
    since: UtcTime | None = None  # only scores as of this time or later (None: every one kept)
    max_realised_ece: Annotated[float, Field(gt=0, le=1)] = 0.05


@dataclass(frozen=True)
class MonitorResult:
    table: pd.DataFrame  # pipeline.monitor.monitor_table
    outcomes: pd.DataFrame  # every written score with its state and outcome
    now: pd.Timestamp  # the export's own time: windows that ended by it are elapsed
    model_name: str
    source: str  # where the scores were read

    @property
    def counts(self) -> dict[str, int]:
        """Written scores by state: elapsed, pending, gone."""
        return state_counts(self.outcomes)

    def gone(self, limit: int = 10) -> list[str]:
        """The first deals scored and since gone from the export."""
        ids = self.outcomes.loc[self.outcomes["state"] == GONE, OPPORTUNITY_ID]
        return ids.drop_duplicates().head(limit).tolist()

    def realised(self, version: str, nights: int) -> Realised | None:
        return realised(self.outcomes, version, nights)


def run_monitor(
    data: str | Path,
    settings: MonitorSettings,
    mapping: str | Path | None = None,
    progress: Progress = silent,
    out: Path | None = None,
) -> MonitorResult:
    """Join the written scores with the export's outcomes; with `out`, write the table (CSV or
    Parquet by its suffix)."""
    if not store_exists(settings.scores):
        raise InputError(
            f"no scores at {redact(settings.scores)}: run `dealscore score --out ...` first (each "
            "night's run adds its scores), or point --scores where it wrote them"
        )
    store = open_store(settings.scores, settings.format)
    name = {"": model_name(data), "*": None}.get(settings.model_name, settings.model_name)
    progress(f"reading the scores in {store.describe()}")
    history = store.history(name, settings.since)
    if history.empty:
        others = sorted(store.history()["model_name"].unique()) if name else []
        raise InputError(
            f"no scores of {name or 'any model'} in {redact(store.describe())}"
            + (f"; it holds scores of {others}: pick one with --model-name" if others else "")
            + "; run `dealscore score` first (each night's run adds its scores)"
        )
    progress(f"reading {redact(str(data))}")
    held = quarantine(read_export(data, mapping).tables)
    require_dated(held.tables, held.report)
    tables = held.tables
    now = export_time(last_event(tables))
    outcomes = scored_outcomes(history, tables, now, settings.horizon_days)
    table = monitor_table(outcomes)
    if out is not None:
        write_frame(table, out)
    return MonitorResult(table, outcomes, now, name or "*", redact(store.describe()))
