"""The side models, fitted on the win model's rows, folds and weights with its rung: the win
model without down-weighting heroic wins, won this quarter, without the reps' inputs, and no
decision among the deals not won."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from dealscore.features import FEATURE_NAMES, QUARTER_FEATURE_NAMES
from dealscore.features.deal import CALENDAR_FEATURES, amount_as_of
from dealscore.features.forecast import REP_INPUTS
from dealscore.model.estimator import WinProbabilityModel
from dealscore.model.ladder import Ladder
from dealscore.model.metrics import evaluate
from dealscore.model.split import TimeFolds
from dealscore.model.totals import CollectiveError, collective_error, quarters_of
from dealscore.pipeline.training.fit import cross_fit_ladder, side_rungs
from dealscore.pipeline.training.rows import (
    DataMinimumError,
    TrainingRows,
    purged_folds,
    without_rep_inputs,
)
from dealscore.pipeline.training.settings import TrainSettings
from dealscore.progress import Progress
from dealscore.schemas import Opportunities
from dealscore.schemas.features import OPPORTUNITY_ID


@dataclass(frozen=True)
class SideFit:
    """What a side model is fitted on (the win model's rows, folds and weights) and judged on
    (the newest fold's rows: `test`, at positions `newest` of `rows`)."""

    rows: pd.DataFrame
    folds: TimeFolds
    weight: np.ndarray
    newest: np.ndarray
    test: pd.DataFrame
    # cross_fit_ladder with the win model's rung and penalty (the won-this-quarter model
    # chooses its own penalty)
    ladder: Callable[..., Ladder]
    # The last horizon's snapshots whose quarter is over, and their weights (rows.quarter_rows)
    quarter: pd.DataFrame
    quarter_weight: np.ndarray


@dataclass(frozen=True)
class SideModels:
    """The side models the settings asked for and what they measured on the test rows."""

    q_test: np.ndarray  # P(no decision | not won) on the test rows; NaN without that model
    unweighted: dict[str, float] | None = None  # the win model's metrics without down-weighting
    in_quarter: WinProbabilityModel | None = None
    in_quarter_metrics: dict[str, float] = field(default_factory=dict)
    in_quarter_error: CollectiveError | None = None
    independent: Ladder | None = None  # out of fold only: a contender, never used to score
    no_decision: WinProbabilityModel | None = None


def side_fit(
    win: Ladder,
    prepared: TrainingRows,
    weight: np.ndarray,
    settings: TrainSettings,
    progress: Progress,
    quarter: pd.DataFrame,
    quarter_weight: np.ndarray,
) -> SideFit:
    """The win model's rows and weights, its newest fold as test rows, and its rung; the
    snapshots only the won-this-quarter model learns from, with `quarter_weight`."""
    newest = prepared.folds.newest()
    test = prepared.rows.iloc[newest].reset_index(drop=True)
    # Side models: the win model's rung with its penalty, or the base rate where that rung
    # learns nothing; never a richer one. Only the won-this-quarter model searches its own
    # penalty (its label leans on the days left, which the win model's penalty flattened).
    ladder = partial(
        cross_fit_ladder,
        settings=settings,
        progress=progress,
        rungs=side_rungs(win),
        penalty=getattr(win.model.scorer_, "C_", None),
    )
    return SideFit(
        prepared.rows, prepared.folds, weight, newest, test, ladder, quarter, quarter_weight
    )


def fit_side_models(
    fit: SideFit, deals: pd.DataFrame, settings: TrainSettings, progress: Progress
) -> SideModels:
    """Every side model the settings ask for, in this order: unweighted, won this quarter,
    without the reps, no decision."""
    unweighted = _unweighted(fit, settings, progress)
    in_quarter, in_quarter_metrics, in_quarter_error = _in_quarter(fit, deals, settings, progress)
    independent = _independent(fit, settings)
    no_decision, q_test = _no_decision(fit, settings, progress)
    return SideModels(
        q_test=q_test,
        unweighted=unweighted,
        in_quarter=in_quarter,
        in_quarter_metrics=in_quarter_metrics,
        in_quarter_error=in_quarter_error,
        independent=independent,
        no_decision=no_decision,
    )


def _unweighted(
    fit: SideFit, settings: TrainSettings, progress: Progress
) -> dict[str, float] | None:
    """The test metrics of the win model fitted without down-weighting the heroic wins."""
    if settings.heroic_weight >= 1.0:
        return None
    progress("heroics: refitting without down-weighting the heroic wins")
    rows = fit.rows
    plain = fit.ladder(
        rows, fit.folds, weight=rows["weight"].to_numpy(), what="unweighted", refit=False
    )
    return evaluate(fit.test["label"], plain.model.oof_[fit.newest])


def _in_quarter(
    fit: SideFit, deals: pd.DataFrame, settings: TrainSettings, progress: Progress
) -> tuple[WinProbabilityModel | None, dict[str, float], CollectiveError | None]:
    """The won-this-quarter model, its test metrics and its quarter totals' error."""
    if not settings.in_quarter_model:
        return None, {}, None
    # Winning this quarter is not winning ever (deals slip): the same features, labelled won
    # before the end of the snapshot's quarter, for `dealscore compare` (docs/forecast.md).
    rows, folds, weight = _in_quarter_rows(fit, settings)
    try:
        quarter = fit.ladder(
            rows,
            folds,
            weight=weight,
            label="label_in_quarter",
            what="won-this-quarter model",
            timing=CALENDAR_FEATURES,
            # A penalty of its own: the win model's, chosen for winning ever, flattened how
            # much the days left matter (early stages at a quarter's start given too little).
            penalty=None,
            # Its probabilities are summed into the quarter's number, and no recent correction
            # sets its level: the refit keeps the win rate its calibration was fitted to.
            refit_correction=True,
            # How its sharpness moves through the quarter, where the rows' dates span quarters
            # enough to tell the days left from the date: within one, the two are one thing.
            timed_calibration=not folds.by_deal,
            columns=QUARTER_FEATURE_NAMES,  # with where the expected close sits against the end
        )
    except DataMinimumError as exc:  # too few in-quarter wins: compare uses slips
        progress(f"no won-this-quarter model: {exc}")
        return None, {}, None
    in_quarter = quarter.model
    # empty when the newest block lies in the cut-off's own quarter, or the blocks are of deals
    newest = folds.newest()
    metrics = (
        evaluate(rows["label_in_quarter"].iloc[newest], in_quarter.oof_[newest])
        if len(newest)
        else {}
    )
    return in_quarter, metrics, _quarter_error(rows, deals, in_quarter)


def _in_quarter_rows(
    fit: SideFit, settings: TrainSettings
) -> tuple[pd.DataFrame, TimeFolds, np.ndarray]:
    """The won-this-quarter model's rows (those whose quarter ended by the cut-off), their
    folds and weights."""
    known = fit.rows["in_quarter_known"].to_numpy(dtype=bool)
    # Its label runs to the quarter's end, beyond a short history's label window: the folds
    # stay purged by the window (purging by a whole quarter cost such a history more, in the
    # backtests, than the overlap of labels with the next block does).
    rows, weight = fit.rows[known].reset_index(drop=True), fit.weight[known]
    if len(fit.quarter):  # and the last horizon's rows whose quarter is over
        rows = pd.concat([rows, fit.quarter], ignore_index=True)
        weight = np.concatenate([weight, fit.quarter_weight])
    # Within one quarter the date and the days left are one thing: blocks of dates would hold
    # out blocks of the quarter, each predicted by extrapolating the days left. Blocks of deals.
    one_quarter = len(quarters_of(rows["as_of"])) == 1
    if not (len(fit.quarter) or one_quarter):  # the win model's folds over the same rows
        return rows, fit.folds.subset(known), weight
    folds, _ = purged_folds(rows, fit.folds.horizon_days, settings, by_deal=one_quarter)
    return rows, folds, weight


def _quarter_error(
    rows: pd.DataFrame, deals: pd.DataFrame, in_quarter: WinProbabilityModel
) -> CollectiveError:
    """How the in-quarter model's quarter totals compared with the bookings (pipeline/quarter.py)."""
    final = (
        rows[OPPORTUNITY_ID].map(
            deals.set_index(Opportunities.opportunity_id)[Opportunities.amount]
        )
        if Opportunities.amount in deals
        else pd.Series(np.nan, index=rows.index)
    )
    as_of_amount = amount_as_of(rows)
    return collective_error(
        rows["as_of"],
        rows["days_to_quarter_end"].to_numpy(),
        as_of_amount,
        final.fillna(pd.Series(as_of_amount, index=rows.index)).to_numpy(dtype=float),
        in_quarter.oof_,
        rows["label_in_quarter"].to_numpy(),
    )


def _independent(fit: SideFit, settings: TrainSettings) -> Ladder | None:
    """The recipe without the reps' inputs, as a contender, when the export has them."""
    has_rep_inputs = bool(fit.rows[sorted(REP_INPUTS)].notna().to_numpy().any())
    if not (settings.rep_inputs and settings.independent_contender and has_rep_inputs):
        return None
    return fit.ladder(
        without_rep_inputs(fit.rows),
        fit.folds,
        weight=fit.weight,
        what="independent model",
        refit=False,
    )


def _no_decision(
    fit: SideFit, settings: TrainSettings, progress: Progress
) -> tuple[WinProbabilityModel | None, np.ndarray]:
    """P(no decision | not won in H), fitted on the rows not won, and its values on the test rows."""
    q_test = np.full(len(fit.test), np.nan)
    if not settings.outcome_model:
        return None, q_test
    not_won = (fit.rows["label"] == 0).to_numpy()
    try:
        split = fit.ladder(
            fit.rows[not_won],
            fit.folds.subset(not_won),
            weight=fit.weight[not_won],
            label="label_no_decision",
            what="no-decision model",
        )
    except DataMinimumError as exc:  # e.g. an export without no-decision deals
        progress(f"no no-decision model: {exc}")
        return None, q_test
    no_decision = split.model
    # Won test rows were never its training rows; the others get their out-of-fold q.
    q_test = no_decision.predict_proba(fit.test[FEATURE_NAMES])[:, 1]
    newest = fit.newest
    test_not_won = not_won[newest]
    q_test[test_not_won] = no_decision.oof_[(np.cumsum(not_won) - 1)[newest][test_not_won]]
    return no_decision, q_test
