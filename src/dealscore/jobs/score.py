"""Job: score every deal open at as_of with the champion model, explain it, write it back, and
log the run. The scoring itself is pipeline.scoring (pandas) or pipeline.spark (Spark); the
model is loaded and the run logged here.

Nothing is written when more than `max_rejected_share` of the open deals cannot be scored.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow as pa

from dealscore.errors import InputError
from dealscore.features.asof import export_time, last_event, stale_as_of
from dealscore.features.columns import scoring_columns, with_labels
from dealscore.io import read_export
from dealscore.io.scores import Run, ScoreStore, open_store
from dealscore.io.secrets import redact
from dealscore.model.bundle import LoadedModel
from dealscore.pipeline.scoring import (
    ScoreResult,
    ScoreSettings,
    contract_rejects,
    drift_tables,
    finish_scores,
    measure_drift,
    prepare_scores,
)
from dealscore.pipeline.settle import finish
from dealscore.progress import Laps, Progress, silent
from dealscore.schemas.contract import require_dated
from dealscore.schemas.quarantine import quarantine
from dealscore.schemas.tables import utc
from dealscore.tracking.models import load_model, require_store
from dealscore.tracking.registry import champion_uri
from dealscore.tracking.scoring_run import log_scoring
from dealscore.tracking.store import tracking_uri, use_store


def run_score(
    data: str | Path,
    settings: ScoreSettings,
    as_of: pd.Timestamp | None = None,
    mapping: str | Path | None = None,
    progress: Progress = silent,
) -> ScoreResult:
    """Load the model, read the export, score, check, write, log; returns what was written."""
    if not settings.model:  # the champion of the export's own CRM
        settings = replace(settings, model=champion_uri(data))
    if settings.engine == "spark" and mapping:
        raise InputError(
            "the Spark engine reads tables already in the data contract's shape; map the "
            "export first with `dealscore ingest --mapping ...`, then score that folder"
        )
    if settings.track and not os.environ.get("MLFLOW_RUN_ID"):
        require_store(settings.model, tracking_uri(settings.tracking_uri))
        # The scoring run is logged last: an unusable store must fail now, not after the write.
        use_store(tracking_uri(settings.tracking_uri), settings.experiment)
    lap = Laps()
    progress(f"loading {settings.model}")
    loaded = load_model(settings.model, settings.tracking_uri)
    if loaded.note:
        progress(f"NOTE: {loaded.note}")
    store = open_store(settings.out, settings.format)  # an unreachable database fails here
    lap("load model")
    if settings.engine == "spark":
        from dealscore.pipeline.spark import score_on_spark  # pyspark is an optional extra

        scored_at = pd.Timestamp.now(tz="UTC").floor("s")
        result = score_on_spark(
            str(data), loaded, store, settings, as_of, progress, lap, scored_at=scored_at
        )
    else:
        result = _score_on_pandas(data, loaded, store, settings, as_of, mapping, progress, lap)
    if settings.track:
        log_scoring(result, settings)
    return result


def _score_on_pandas(
    data: str | Path,
    loaded: LoadedModel,
    store: ScoreStore,
    settings: ScoreSettings,
    as_of: pd.Timestamp | None,
    mapping: str | Path | None,
    progress: Progress,
    lap: Laps,
) -> ScoreResult:
    """Read and quarantine the export in one process, score, settle against the store."""
    progress(f"reading {redact(str(data))}")
    export = read_export(data, mapping, labels=True)
    held = quarantine(export.tables)  # bad rows out, with their deals; table-level errors raise
    del export
    require_dated(held.tables, held.report)  # no deal with a readable date: no time to score as of
    if said := held.describe():
        progress(said)
    coverage = held.tables.coverage()  # of the export as read, before unread columns go
    # Only what scoring reads is kept: the columns only validation needed held gigabytes.
    tables, taken_out = scoring_columns(held.tables), held.deals
    del held
    tables = with_labels(tables)  # once the rest is gone: the text they replace goes next
    # Arrow's allocator keeps what the dropped columns and validation freed; NumPy, which
    # builds the features next, cannot reuse it: handed back, it is not held twice.
    pa.default_memory_pool().release_unused()
    lap("read")
    if warning := loaded.mismatch(coverage):
        progress(f"WARNING: {warning}")
    # No time given: the export's own, so a rerun on the same export is the same run.
    now = export_time(last_event(tables))
    as_of = utc(as_of if as_of is not None else now)
    if warning := stale_as_of(as_of, now):
        progress(f"WARNING: {warning}")
    horizon = loaded.bundle.horizon_days
    meaning = f": P(won within {horizon:g} days)" if horizon else ""
    progress(f"scoring deals open at {as_of:%Y-%m-%d %H:%M} UTC with {loaded.describe()}" + meaning)
    progress(f"scored by {loaded.rung()}")
    run = Run(as_of, loaded.name, loaded.version)
    previous = store.previous(run)
    scored_at = pd.Timestamp.now(tz="UTC").floor("s")
    ready = prepare_scores(tables, loaded, as_of, settings, progress, previous=previous)
    tables = drift_tables(tables)  # features built: the activities and the rest go now
    pa.default_memory_pool().release_unused()
    scores, rejected, features = finish_scores(
        ready, loaded, settings, progress, scored_at=scored_at, previous=previous
    )
    del ready
    held_open = contract_rejects(taken_out, as_of, loaded, scored_at)
    rejected = pd.concat([rejected, held_open], ignore_index=True)
    lap("features + score + reasons")
    open_deals = len(features) + len(held_open)

    def drift(written: pd.DataFrame, _: pd.DataFrame) -> tuple[pd.Series, tuple[str, ...]]:
        return measure_drift(
            tables, features, written, loaded.bundle.reference, settings.psi_warning
        )

    return finish(scores, rejected, open_deals, store, run, settings, loaded, lap, drift, progress)
