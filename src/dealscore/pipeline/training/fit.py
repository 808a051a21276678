"""Fitting the recipe: the model ladder cross-fitted over the time folds, the rungs a side model
may use, boosting progress, the recent correction, and the recipe replayed at past dates."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from dealscore.features import FEATURE_NAMES, FeatureState
from dealscore.model.estimator import Rung
from dealscore.model.ladder import Ladder, fit_ladder
from dealscore.model.recent import recent_shift, win_timing
from dealscore.model.split import TimeFolds
from dealscore.pipeline.forward import ForwardTest, default_dates, forward_test
from dealscore.pipeline.training.rows import (
    DataMinimumError,
    TrainingRows,
    heroic_ids,
    heroic_weights,
    training_rows,
)
from dealscore.pipeline.training.settings import TrainSettings
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables
from dealscore.schemas.features import OPPORTUNITY_ID

PROGRESS_EVERY_SECONDS = 15.0


def round_progress(
    progress: Progress,
    what: str,
    every: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[..., None]:
    """A LightGBM callback that says how far boosting got, at most once per `every` seconds
    (default PROGRESS_EVERY_SECONDS)."""
    every = PROGRESS_EVERY_SECONDS if every is None else every
    last = [clock()]

    def report(env) -> None:
        now = clock()
        if now - last[0] < every:
            return
        last[0] = now
        # (data, metric, value, higher is better[, stdv across folds]); none in the refit
        scores = ", ".join(f"{entry[1]} {entry[2]:.4f}" for entry in env.evaluation_result_list)
        progress(
            f"{what}: round {env.iteration + 1:,} of at most {env.end_iteration:,}"
            + (f" ({scores})" if scores else " (refit on every row)")
        )

    return report


def cross_fit_ladder(
    rows: pd.DataFrame,
    folds: TimeFolds,
    settings: TrainSettings,
    weight: np.ndarray,
    label: str = "label",
    progress: Progress = silent,
    what: str = "win model",
    rungs: tuple[Rung, ...] = (),
    penalty: float | None = None,
    refit: bool = True,
    timing: tuple[str, ...] = (),
    refit_correction: bool = False,
    timed_calibration: bool = False,
    columns: list[str] = FEATURE_NAMES,
) -> Ladder:
    """The model ladder on `label`, every rung cross-fitted over the same folds (the linear
    rungs with `penalty`, else with the one the folds choose); `refit` false: out-of-fold
    probabilities only (a contender judged on the newest fold, never used to score); `timing`:
    features the simplest rungs read too, `refit_correction` and `timed_calibration`
    (WinProbabilityModel);
    `columns`: the features it learns from."""
    try:
        return fit_ladder(
            rows[columns],
            rows[label].to_numpy(),
            folds,
            weight,
            rows[OPPORTUNITY_ID].to_numpy(),
            lambda rung: settings.model(rung, penalty, timing, refit_correction, timed_calibration),
            rungs or settings.ladder,
            settings.ladder_tolerance,
            progress=lambda message: progress(f"{what}: {message}"),
            callbacks=lambda rung: [round_progress(progress, f"{what} ({rung})")],
            refit=refit,
        )
    except ValueError as exc:  # too little history: a backtest skips the period
        raise DataMinimumError(f"{what} ({label}): {exc}; {settings.needs()}") from exc


def side_rungs(ladder: Ladder) -> tuple[Rung, ...]:
    """The rungs a side model (won this quarter, without the reps, no decision) chooses from:
    the win model's, or the base rate when it learns nothing there. Never a richer one."""
    return tuple(dict.fromkeys(("base_rate", ladder.model.rung)))


def correct_recent(ladder: Ladder, prepared: TrainingRows, settings: TrainSettings) -> float:
    """Shift each rung by what the last horizon's early wins say (model/recent.py); returns the
    chosen rung's shift in log-odds (0 when off, or nothing recent to go by)."""
    recent, rows = prepared.recent, prepared.rows
    if not settings.recent_correction or recent.empty:
        return 0.0
    won = (rows["label"] == 1).to_numpy()
    for model in ladder.models.values():
        timing = win_timing(
            model.oof_[won],
            rows["days_to_win"].to_numpy()[won],
            rows["days_to_quarter_end"].to_numpy()[won],
        )
        shift = recent_shift(
            model.predict_proba(recent[FEATURE_NAMES])[:, 1],
            recent["elapsed_days"].to_numpy(),
            recent["days_to_quarter_end"].to_numpy(),
            recent["won_so_far"].to_numpy(),
            recent[OPPORTUNITY_ID].to_numpy(),
            timing,
            settings.recent_prior_sd,
        )
        model.adjust(shift)
    return ladder.model.shift_


def fit_recipe(
    tables: CrmTables, settings: TrainSettings, progress: Progress = silent
) -> tuple[Ladder, FeatureState]:
    """The win model's ladder and its feature state, nothing else: what the forward test
    replays."""
    prepared = training_rows(tables, settings)
    weight = heroic_weights(prepared.rows, heroic_ids(tables, prepared, settings), settings)
    ladder = cross_fit_ladder(prepared.rows, prepared.folds, settings, weight, progress=progress)
    correct_recent(ladder, prepared, settings)
    return ladder, prepared.state


def run_forward(
    tables: CrmTables,
    settings: TrainSettings,
    dates: list[pd.Timestamp] | None = None,
    progress: Progress = silent,
) -> ForwardTest:
    """The forward test of this recipe at `dates` (default: the latest `forward_dates` dates,
    `forward_every_days` apart, whose outcomes the export holds); warns when it is off."""

    if dates is None:
        dates = default_dates(
            tables, settings.forward_dates, settings.forward_every_days, settings.horizon_days
        )
    result = forward_test(
        tables,
        dates,
        partial(fit_recipe, settings=settings, progress=progress),
        settings.horizon_days,
        progress,
    )
    progress(result.summary())
    pooled = result.pooled()
    if pooled and abs(pooled["mean_predicted"] - pooled["actual"]) > 0.1 * pooled["actual"]:
        progress(
            f"WARNING: on the deals really open at past dates the model predicted "
            f"{pooled['mean_predicted']:.3f} on average; {pooled['actual']:.3f} were won"
        )
    return result
