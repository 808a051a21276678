"""Training end to end (`fit_and_evaluate`): the training rows, the win model's ladder, the side
models, and every contender compared on the newest fold's out-of-fold predictions."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd

from dealscore.features import FEATURE_NAMES, FeatureState, build_features
from dealscore.features.baselines import crm_baselines
from dealscore.features.deal import amount_as_of
from dealscore.features.forecast import REP_INPUTS
from dealscore.features.sentences import won_profile
from dealscore.model.drift import Reference, reference
from dealscore.model.estimator import WinProbabilityModel
from dealscore.model.evaluation import by_outcome, compare
from dealscore.model.metrics import evaluate
from dealscore.model.outcomes import outcome_labels, outcome_metrics, three_outcomes
from dealscore.model.totals import collective_error
from dealscore.pipeline.scoring import drift_segments
from dealscore.pipeline.training.fit import correct_recent, cross_fit_ladder, side_rungs
from dealscore.pipeline.training.result import Heroics, TrainResult
from dealscore.pipeline.training.rows import (
    DataMinimumError,
    heroic_ids,
    heroic_weights,
    training_rows,
    without_rep_inputs,
)
from dealscore.pipeline.training.settings import TrainSettings
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables, Opportunities, Status
from dealscore.synthetic.truth import Truth, ceiling


def _learned_categories(tables: CrmTables, train: pd.DataFrame) -> dict[str, float]:
    """Each forecast category's win rate on the given rows: the reps' calls, calibrated."""
    calls = crm_baselines(tables, train[["opportunity_id", "as_of"]])
    calls = train[["opportunity_id", "as_of", "label"]].merge(calls, on=["opportunity_id", "as_of"])
    return calls.dropna(subset=["rep_category"]).groupby("rep_category")["label"].mean().to_dict()


def fit_and_evaluate(
    tables: CrmTables,
    settings: TrainSettings,
    truth: Truth | None = None,
    progress: Progress = silent,
) -> TrainResult:
    """Snapshots, features, time folds, the model ladder, and every contender on the newest
    fold's out-of-fold predictions (the same rows for each)."""
    prepared = training_rows(tables, settings, progress)
    deals = tables.opportunities
    rows, folds, state = prepared.rows, prepared.folds, prepared.state
    cutoff, horizon = prepared.cutoff, prepared.horizon
    flagged = heroic_ids(tables, prepared, settings)
    weight = heroic_weights(prepared, flagged, settings)
    notes = list(prepared.notes)

    win = cross_fit_ladder(rows, folds, settings, weight, progress=progress)
    notes.append(f"scored by the {win.chosen} rung of the model ladder: {win.reason}")
    shift = correct_recent(win, prepared, settings)
    if shift:
        notes.append(
            f"recent correction: the early wins of the last {horizon:g} days move the "
            f"probabilities by {shift:+.3f} in log-odds"
        )
    for note in notes[len(prepared.notes) :]:
        progress(note)
    model = win.model
    newest = folds.newest()
    test = rows.iloc[newest].reset_index(drop=True)
    X_test = test[FEATURE_NAMES]
    # Side models: the win model's rung with its penalty, or the base rate where that rung
    # learns nothing; never a richer one, nor a second search of penalties.
    side = partial(
        cross_fit_ladder,
        settings=settings,
        progress=progress,
        rungs=side_rungs(win),
        penalty=getattr(model.scorer_, "C_", None),
    )

    unweighted = None
    if settings.heroic_weight < 1.0:
        progress("heroics: refitting without down-weighting the heroic wins")
        plain = side(rows, folds, weight=rows["weight"].to_numpy(), what="unweighted", refit=False)
        unweighted = evaluate(test["label"], plain.model.oof_[newest])

    in_quarter, in_quarter_metrics, in_quarter_error = None, {}, None
    if settings.in_quarter_model:
        # Winning this quarter is not winning ever (deals slip): the same features, labelled won
        # before the end of the snapshot's quarter, for `dealscore compare` (docs/forecast.md).
        try:
            quarter = side(
                rows, folds, weight=weight, label="label_in_quarter", what="won-this-quarter model"
            )
        except DataMinimumError as exc:  # too few in-quarter wins: compare uses slips
            progress(f"no won-this-quarter model: {exc}")
        else:
            in_quarter = quarter.model
            in_quarter_metrics = evaluate(test["label_in_quarter"], in_quarter.oof_[newest])
            final = (
                rows["opportunity_id"].map(
                    deals.set_index(Opportunities.opportunity_id)[Opportunities.amount]
                )
                if Opportunities.amount in deals
                else pd.Series(np.nan, index=rows.index)
            )
            as_of_amount = amount_as_of(rows)
            in_quarter_error = collective_error(
                rows["as_of"],
                rows["days_to_quarter_end"].to_numpy(),
                as_of_amount,
                final.fillna(pd.Series(as_of_amount, index=rows.index)).to_numpy(dtype=float),
                in_quarter.oof_,
                rows["label_in_quarter"].to_numpy(),
            )

    independent = None
    has_rep_inputs = bool(rows[sorted(REP_INPUTS)].notna().to_numpy().any())
    if settings.rep_inputs and settings.independent_contender and has_rep_inputs:
        independent = side(
            without_rep_inputs(rows), folds, weight=weight, what="independent model", refit=False
        )

    no_decision: WinProbabilityModel | None = None
    q_test = np.full(len(test), np.nan)
    if settings.outcome_model:
        not_won = (rows["label"] == 0).to_numpy()
        try:
            split = side(
                rows[not_won],
                folds.subset(not_won),
                weight=weight[not_won],
                label="label_no_decision",
                what="no-decision model",
            )
        except DataMinimumError as exc:  # e.g. an export without no-decision deals
            progress(f"no no-decision model: {exc}")
        else:
            no_decision = split.model
            # Won test rows were never its training rows; the others get their out-of-fold q.
            q_test = no_decision.predict_proba(X_test)[:, 1]
            test_not_won = not_won[newest]
            q_test[test_not_won] = no_decision.oof_[(np.cumsum(not_won) - 1)[newest][test_not_won]]

    progress("evaluating against the baselines on the newest fold")
    keys = test[["opportunity_id", "as_of"]]
    crm = keys.merge(crm_baselines(tables, keys), on=["opportunity_id", "as_of"], how="left")
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
    won = int((deals[Opportunities.status] == Status.WON).sum())
    heroics = Heroics(flagged=len(flagged), won=won, weight=settings.heroic_weight)
    if truth is not None:
        heroic = truth.deals.set_index("opportunity_id")["heroic"]
        heroics = replace(
            heroics,
            true_heroic=int(heroic.sum()),
            true_flagged=int(flagged.map(heroic).fillna(False).astype(bool).sum()),
        )
    if unweighted is not None:
        heroics = replace(
            heroics, weighted=evaluate(test["label"], predictions["model"]), unweighted=unweighted
        )
    outcomes = None
    if no_decision is not None:
        outcomes = _outcome_comparison(
            test, predictions, q_test, rows[rows["label"] == 0], crm["rep_probability"]
        )
    drift_reference = latest_pipeline_reference(tables, cutoff, state, model)
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
        no_decision=no_decision,
        outcome_metrics=outcomes,
        in_quarter=in_quarter,
        in_quarter_metrics=in_quarter_metrics,
        in_quarter_error=in_quarter_error,
        window={
            "first_created": deals[Opportunities.created_at].min(),
            "history_start": prepared.start,
            "cutoff": cutoff,
            **{f"fold_{b + 1}_from": s for b, s in enumerate(folds.starts)},
        },
        horizon_days=horizon,
        notes=tuple(notes),
    )


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
