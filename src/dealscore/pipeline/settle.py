"""The end of a scoring run on either engine: the rows the Scores schema refuses moved to the
rejects, the reconciliation and the reject limit, one write, then the drift of what was written."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pandera.errors

from dealscore.io.scores import Run, ScoreStore
from dealscore.model.bundle import LoadedModel
from dealscore.pipeline.scoring import (
    ScoreResult,
    ScoreSettings,
    TooManyRejectedError,
    rejects,
)
from dealscore.progress import Laps, Progress, silent
from dealscore.schemas.scores import Rejected, RejectedRows, ScoreRows, Scores

# What each engine measures drift with, from the rows written: (PSI per input, warnings).
Drift = Callable[[ScoreRows, RejectedRows], tuple[pd.Series, tuple[str, ...]]]


def finish(
    scores: ScoreRows,
    rejected: RejectedRows,
    open_deals: int,
    store: ScoreStore,
    run: Run,
    settings: ScoreSettings,
    loaded: LoadedModel,
    lap: Laps,
    drift: Drift,
    progress: Progress = silent,
) -> ScoreResult:
    """Settle and write the run's rows, then measure the drift of what was written."""
    scores, rejected = settle(scores, rejected, open_deals, store, run, settings, progress)
    lap("validate + write")
    psi, warnings = drift(scores, rejected)
    return ScoreResult(
        scores,
        rejected,
        open_deals,
        store.describe(),
        loaded,
        run.as_of,
        psi,
        lap.seconds,
        drift_warnings=warnings,
    )


def settle(
    scores: ScoreRows,
    rejected: RejectedRows,
    open_deals: int,
    store: ScoreStore,
    run: Run,
    settings: ScoreSettings,
    progress: Progress = silent,
) -> tuple[ScoreRows, RejectedRows]:
    """The schema quarantine, reconciliation and the reject limit, then one write: the same
    for every engine. Returns what was written."""
    scores, rejected = _quarantine(scores, rejected)
    rejected = Rejected.validate(rejected)
    if open_deals != len(scores) + len(rejected):  # a bug, never bad data: refuse to write
        raise RuntimeError(
            f"reconciliation failed: {open_deals:,} open deals, {len(scores):,} scored, "
            f"{len(rejected):,} rejected"
        )
    share = len(rejected) / max(open_deals, 1)
    if share > settings.max_rejected_share:
        raise TooManyRejectedError(
            f"{len(rejected):,} of {open_deals:,} open deals ({share:.1%}) could not be scored, "
            f"above max_rejected_share {settings.max_rejected_share:.0%}; nothing was written. "
            f"Reasons: {rejected['rule'].value_counts().to_dict()}"
        )
    progress(f"writing {len(scores):,} scores and {len(rejected):,} rejects to {store.describe()}")
    store.write(run, scores, rejected)
    return scores, rejected


def _quarantine(scores: pd.DataFrame, rejected: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows the Scores schema refuses move to the rejected rows, with the failed check."""
    try:
        return Scores.validate(scores, lazy=True), rejected
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases.dropna(subset=["index"])
        if cases.empty:  # a frame-level failure is a bug, not bad data: stop
            raise
        why = cases.groupby("index").apply(
            lambda c: "; ".join(
                f"{col} fails {chk}" for col, chk in zip(c["column"], c["check"], strict=True)
            )
        )
        bad = scores.index.isin(why.index)
        moved = scores[bad]
        extra = rejects(moved, "score_schema", why.reindex(moved.index).to_numpy())
        return Scores.validate(scores[~bad].reset_index(drop=True)), pd.concat(
            [rejected, extra], ignore_index=True
        )
