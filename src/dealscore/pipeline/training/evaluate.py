"""Training end to end (`fit_and_evaluate`): the training rows, the win model's ladder, the side
models, and every contender compared on the newest fold's out-of-fold predictions."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from dealscore.explain.sentences import won_profile
from dealscore.features import FEATURE_NAMES, FeatureState, build_features
from dealscore.features.baselines import crm_baselines
from dealscore.model.drift import Reference, reference
from dealscore.model.estimator import WinProbabilityModel
from dealscore.model.evaluation import by_outcome, compare
from dealscore.model.ladder import Ladder
from dealscore.model.metrics import evaluate
from dealscore.model.outcomes import outcome_labels, outcome_metrics, three_outcomes
from dealscore.pipeline.scoring import drift_segments
from dealscore.pipeline.training.fit import correct_recent, cross_fit_ladder
from dealscore.pipeline.training.result import Heroics, TrainResult
from dealscore.pipeline.training.rows import (
    TrainingRows,
    heroic_ids,
    heroic_weights,
    quarter_rows,
    training_rows,
)
from dealscore.pipeline.training.settings import TrainSettings
from dealscore.pipeline.training.side import SideFit, fit_side_models, side_fit
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables, Opportunities, Status
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID
from dealscore.synthetic.truth import Truth, ceiling


def fit_and_evaluate(
    tables: CrmTables,
    settings: TrainSettings,
    truth: Truth | None = None,
    progress: Progress = silent,
    cutoff: pd.Timestamp | None = None,
) -> TrainResult:
    """Snapshots, features, time folds, the model ladder, and every contender on the newest
    fold's out-of-fold predictions (the same rows for each). `cutoff`: training_rows'."""
    prepared = training_rows(tables, settings, progress, cutoff)
    deals = tables.opportunities
    flagged = heroic_ids(tables, prepared, settings)
    weight = heroic_weights(prepared.rows, flagged, settings)
    win, said = _win_model(prepared, settings, weight, progress)
    quarter = quarter_rows(tables, prepared, settings, progress)
    quarter_weight = heroic_weights(quarter, flagged, settings)
    fit = side_fit(win, prepared, weight, settings, progress, quarter, quarter_weight)
    side = fit_side_models(fit, deals, settings, progress)

    progress("evaluating against the baselines on the newest fold")
    test, rows, folds = fit.test, fit.rows, fit.folds
    predictions, rep_probability = _contenders(
        tables, fit, win, side.independent, prepared.horizon, truth
    )
    heroics = _heroics(deals, flagged, settings, truth, side.unweighted, test, predictions)
    outcomes = None
    if side.no_decision is not None:
        outcomes = _outcome_comparison(
            test, predictions, side.q_test, rows[rows["label"] == 0], rep_probability
        )
    model, state = win.model, prepared.state
    drift_reference = latest_pipeline_reference(tables, prepared.cutoff, state, model)
    return TrainResult(
        model=model,
        feature_state=state,
        comparison=compare(test, predictions),
        outcomes=by_outcome(test, predictions["model"]),
        fold_rows={f"fold_{b + 1}": int((folds.block == b).sum()) for b in range(folds.k)},
        ladder=win,
        test=test,
        predictions=predictions,
        heroics=heroics,
        reference=drift_reference,
        won_profile=won_profile(rows[FEATURE_NAMES], rows["label"].to_numpy()),
        no_decision=side.no_decision,
        outcome_metrics=outcomes,
        in_quarter=side.in_quarter,
        in_quarter_metrics=side.in_quarter_metrics,
        in_quarter_error=side.in_quarter_error,
        window={
            "first_created": deals[Opportunities.created_at].min(),
            "history_start": prepared.start,
            "cutoff": prepared.cutoff,
            **{f"fold_{b + 1}_from": s for b, s in enumerate(folds.starts)},
        },
        horizon_days=prepared.horizon,
        notes=(*prepared.notes, *said),
    )


def _win_model(
    prepared: TrainingRows, settings: TrainSettings, weight: np.ndarray, progress: Progress
) -> tuple[Ladder, list[str]]:
    """The win model's ladder, corrected for the last horizon, and what was decided, in words."""
    win = cross_fit_ladder(prepared.rows, prepared.folds, settings, weight, progress=progress)
    notes = [f"scored by the {win.chosen} rung of the model ladder: {win.reason}"]
    shift = correct_recent(win, prepared, settings)
    if shift:
        notes.append(
            f"recent correction: the early wins of the last {prepared.horizon:g} days move the "
            f"probabilities by {shift:+.3f} in log-odds"
        )
    for note in notes:
        progress(note)
    return win, notes


def _contenders(
    tables: CrmTables,
    fit: SideFit,
    win: Ladder,
    independent: Ladder | None,
    horizon: float,
    truth: Truth | None,
) -> tuple[dict[str, np.ndarray], pd.Series]:
    """Every contender's probabilities on the test rows (the ladder's rungs and the model
    without the reps out of fold, the reps' calls, the stages, on generated data the ceiling),
    and the reps' own probabilities."""
    test, newest, rows, folds = fit.test, fit.newest, fit.rows, fit.folds
    keys = test[[OPPORTUNITY_ID, AS_OF]]
    crm = keys.merge(crm_baselines(tables, keys), on=[OPPORTUNITY_ID, AS_OF], how="left")
    learned = crm["rep_category"].map(
        _learned_categories(tables, rows.iloc[folds.train[folds.k - 1]])
    )
    predictions = {
        **win.oof(newest),
        **({"model_without_reps": independent.model.oof_[newest]} if independent else {}),
        "rep_forecast": crm["rep_probability"].to_numpy(dtype=float),
        "rep_category_learned": learned.to_numpy(dtype=float),
        "stage_probability": crm["stage_probability"].to_numpy(dtype=float),
    }
    # Generated data: the ceiling, P(won within H | the deal's hidden state at as_of), and what
    # its state on its first day said (docs/synthetic.md).
    if truth is not None:
        oracle = ceiling(truth, keys, horizon)
        predictions["oracle_ceiling"] = oracle["p_star"].to_numpy()
        predictions["oracle_creation"] = oracle["p_creation"].to_numpy()
    # A contender the export cannot provide (no forecasts, say) is left out, not scored on nothing.
    predictions = {name: p for name, p in predictions.items() if np.isfinite(p).mean() > 0.5}
    return predictions, crm["rep_probability"]


def _learned_categories(tables: CrmTables, train: pd.DataFrame) -> dict[str, float]:
    """Each forecast category's win rate on the given rows: the reps' calls, calibrated."""
    calls = crm_baselines(tables, train[[OPPORTUNITY_ID, AS_OF]])
    calls = train[[OPPORTUNITY_ID, "as_of", "label"]].merge(calls, on=[OPPORTUNITY_ID, AS_OF])
    return calls.dropna(subset=["rep_category"]).groupby("rep_category")["label"].mean().to_dict()


def _heroics(
    deals: pd.DataFrame,
    flagged: pd.Series,
    settings: TrainSettings,
    truth: Truth | None,
    unweighted: dict[str, float] | None,
    test: pd.DataFrame,
    predictions: dict[str, np.ndarray],
) -> Heroics:
    """What the heroic-win rule flagged, how much of it is truly heroic on generated data, and
    the test metrics with and without down-weighting."""
    won = int((deals[Opportunities.status] == Status.WON).sum())
    heroics = Heroics(flagged=len(flagged), won=won, weight=settings.heroic_weight)
    if truth is not None:
        heroic = truth.deals.set_index(OPPORTUNITY_ID)["heroic"]
        heroics = replace(
            heroics,
            true_heroic=int(heroic.sum()),
            true_flagged=int(flagged.map(heroic).fillna(False).astype(bool).sum()),
        )
    if unweighted is not None:
        heroics = replace(
            heroics, weighted=evaluate(test["label"], predictions["model"]), unweighted=unweighted
        )
    return heroics


def _outcome_comparison(
    test: pd.DataFrame,
    predictions: dict[str, np.ndarray],
    q: np.ndarray,
    not_won: pd.DataFrame,
    rep_probability: pd.Series,
) -> pd.DataFrame:
    """The three outcomes on the test rows: the model's, and what P(won) alone gives when the
    rest is split by the training rows' share of no decisions (the model's and the reps')."""
    outcome = outcome_labels(test["label"], test["label_no_decision"])
    flat = np.full(len(test), float(not_won["label_no_decision"].mean()))
    contenders = {
        "model": three_outcomes(predictions["model"], q),
        "model_won_flat_split": three_outcomes(predictions["model"], flat),
        "rep_forecast_flat_split": three_outcomes(rep_probability.to_numpy(dtype=float), flat),
    }
    if not np.isfinite(contenders["rep_forecast_flat_split"]).all(axis=1).mean() > 0.5:
        del contenders["rep_forecast_flat_split"]  # an export without forecasts
    return outcome_metrics(outcome, contenders)


def latest_pipeline_reference(
    tables: CrmTables, cutoff: pd.Timestamp, state: FeatureState, model: WinProbabilityModel
) -> Reference:
    """What scoring compares its open deals with: the deals open at the training cut-off, with
    their calibrated scores and their segments; the population of a nightly run on the training
    export. (Years of training snapshots are another population: history that accumulates would
    "drift" by construction, and one segment's rate at many dates would fill bins of its own.)"""
    pipeline = build_features(tables, cutoff, state)
    if pipeline.empty:
        return Reference()
    scored = pipeline[FEATURE_NAMES].assign(
        win_probability=model.predict_proba(pipeline[FEATURE_NAMES])[:, 1]
    )
    # The segments the learned values stand for: who the open deals are, not what was learned.
    segments = drift_segments(tables, pipeline)
    return reference(scored, [*FEATURE_NAMES, "win_probability"], segments=segments)
