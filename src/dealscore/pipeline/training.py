"""Job: train the win-probability model on time-sliced snapshots, compare it with the baselines
on the same test rows, and (unless tracking is off) log the run and register the model in MLflow.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pydantic.dataclasses
from pydantic import Field
from sklearn.metrics import roc_auc_score

from dealscore.errors import DataError, InputError
from dealscore.features import (
    FEATURE_NAMES,
    FeatureState,
    SnapshotSettings,
    build_features,
    fit_feature_state,
)
from dealscore.features.asof import last_event
from dealscore.features.baselines import crm_baselines
from dealscore.features.forecast import REP_INPUTS
from dealscore.features.heroics import HeroicsRule, heroic_wins
from dealscore.features.pit import DAY, micros, quarter_end_micros
from dealscore.features.sentences import won_profile
from dealscore.features.snapshots import label_horizon, snapshots
from dealscore.io.icp import load_icp
from dealscore.model.baselines import logistic_baseline
from dealscore.model.drift import Reference, reference
from dealscore.model.estimator import WinProbabilityModel
from dealscore.model.evaluation import by_outcome, compare
from dealscore.model.metrics import evaluate
from dealscore.model.outcomes import BaseRate, outcome_labels, outcome_metrics, three_outcomes
from dealscore.model.split import PURGED, SLICES, SliceShares, assign_slices, date_slices
from dealscore.pipeline.forward import ForwardTest, default_dates, forward_test
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables, Opportunities, Status
from dealscore.settings import SETTINGS, default
from dealscore.synthetic.truth import Truth, ceiling

Share = Annotated[float, Field(gt=0, lt=1)]


def _estimator_default(name: str) -> Any:
    return inspect.signature(WinProbabilityModel.__init__).parameters[name].default


@pydantic.dataclasses.dataclass(frozen=True, config=SETTINGS)
class TrainSettings:
    """The training recipe; defaults come from the classes that use them."""

    snapshot_scheme: Literal["grid", "per_deal", "periodic"] = default(SnapshotSettings, "scheme")
    snapshots_per_deal: Annotated[int, Field(ge=1)] = default(SnapshotSettings, "per_deal")
    every_days: Annotated[float, Field(gt=0)] = default(SnapshotSettings, "every_days")
    horizon_days: Annotated[float, Field(ge=0)] = default(SnapshotSettings, "horizon_days")
    age_weight_days: Annotated[float, Field(gt=0)] = default(SnapshotSettings, "age_weight_days")
    train_share: Share = default(SliceShares, "train")
    validation_share: Share = default(SliceShares, "validation")
    calibration_share: Share = default(SliceShares, "calibration")
    test_share: Share = default(SliceShares, "test")
    min_won: int = 50
    min_not_won: int = 50
    cohort_warning_ratio: float = 1.5
    n_estimators: Annotated[int, Field(ge=1)] = _estimator_default("n_estimators")
    learning_rate: Annotated[float, Field(gt=0)] = _estimator_default("learning_rate")
    num_leaves: Annotated[int, Field(ge=2)] = _estimator_default("num_leaves")
    min_child_samples: Annotated[int, Field(ge=1)] = _estimator_default("min_child_samples")
    early_stopping_rounds: Annotated[int, Field(ge=1)] = _estimator_default("early_stopping_rounds")
    calibration: Literal["auto", "sigmoid", "isotonic"] = _estimator_default("calibration")
    seed: int = 0
    icp: str = "features/icp.yaml"
    in_quarter_model: bool = True
    # false: the model never sees the reps' forecasts (an independent second opinion); true
    # also fits that independent model as a contender, so the card shows what the reps add.
    rep_inputs: bool = True
    independent_contender: bool = True
    # P(no decision | not won within H): splits the rest into lost and no decision.
    outcome_model: bool = True
    min_no_decision_auc: float = 0.6  # below it on validation: split by the base rate
    forward_dates: int = 3
    forward_every_days: float = 56.0
    max_forward_ece: float = 0.05
    heroic_weight: Annotated[float, Field(ge=0, le=1)] = 1.0
    heroic_max_icp_score: float = default(HeroicsRule, "max_icp_score")
    heroic_min_discount: float = default(HeroicsRule, "min_discount")
    heroic_discount_window_days: float = default(HeroicsRule, "discount_window_days")
    track: bool = True
    tracking_uri: str = ""
    experiment: str = "dealscore"
    # "": one name per CRM, from the export's location (data/demo/crm -> dealscore-demo-crm);
    # set it when the location changes from night to night.
    registered_model: str = ""
    # A challenger trained on an export with other columns filled than the champion's (another
    # CRM, or this one after a change) is not promoted unless this is set.
    allow_coverage_change: bool = False
    promotion_metric: Literal["log_loss", "brier"] = "log_loss"
    promotion_tolerance: Annotated[float, Field(ge=0)] = 0.002

    def __post_init__(self) -> None:
        self.shares()  # the four shares must sum to 1: checked on load, not after the read

    def snapshots(self) -> SnapshotSettings:
        return SnapshotSettings(
            self.snapshot_scheme,
            self.snapshots_per_deal,
            self.every_days,
            self.horizon_days,
            self.age_weight_days,
            self.seed,
        )

    def shares(self) -> SliceShares:
        return SliceShares(
            self.train_share, self.validation_share, self.calibration_share, self.test_share
        )

    def heroics(self) -> HeroicsRule:
        return HeroicsRule(
            self.heroic_max_icp_score, self.heroic_min_discount, self.heroic_discount_window_days
        )

    def model(self) -> WinProbabilityModel:
        return WinProbabilityModel(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            early_stopping_rounds=self.early_stopping_rounds,
            calibration=self.calibration,
            random_state=self.seed,
        )


class DataMinimumError(DataError):
    """Too few resolved deals to train on."""


@dataclass(frozen=True)
class Heroics:
    """What the heroic-win rule flagged and, when down-weighting is on, what it changed."""

    flagged: int
    won: int
    weight: float
    true_heroic: int | None = None  # generated data only: the truth file's count...
    true_flagged: int | None = None  # ...and how many of the flagged deals are truly heroic
    # When down-weighting: test metrics (all test rows) with it and of the same model without it.
    weighted: dict[str, float] | None = None
    unweighted: dict[str, float] | None = None


@dataclass(frozen=True)
class Tracking:
    run_id: str
    experiment_id: str
    tracking_uri: str
    model_uri: str
    version: str | None = None
    promoted: bool = False
    reason: str = ""
    registered_model: str = ""


@dataclass(frozen=True)
class TrainResult:
    model: WinProbabilityModel
    feature_state: FeatureState
    comparison: pd.DataFrame  # contender x segment metrics on the same test rows
    outcomes: pd.DataFrame  # the model's mean probability per final outcome, test rows
    slice_rows: dict[str, int]
    boundaries: pd.Series
    test: pd.DataFrame  # test snapshots with features, label, outcome and life fraction
    predictions: dict[str, np.ndarray]  # every contender on the test rows
    heroics: Heroics
    window: dict[str, pd.Timestamp] = field(default_factory=dict)
    reference: Reference = field(default_factory=Reference)  # for drift checks when scoring
    in_quarter: WinProbabilityModel | None = None  # P(won before the snapshot's quarter ends)
    in_quarter_metrics: dict[str, float] = field(default_factory=dict)
    horizon_days: float | None = None  # grid: win_probability = P(won within this many days)
    scheme: str = "grid"
    forward: ForwardTest | None = None  # the recipe replayed at past dates (run_forward)
    won_profile: pd.DataFrame | None = None  # won deals' typical features per stage, for reasons
    no_decision: WinProbabilityModel | BaseRate | None = None  # P(no decision | not won in H)
    outcome_metrics: pd.DataFrame | None = None  # three outcomes against baselines, test rows
    tracking: Tracking | None = None


def check_minimums(tables: CrmTables, settings: TrainSettings) -> None:
    status = tables.opportunities[Opportunities.status]
    won = int((status == Status.WON).sum())
    not_won = int(status.isin([Status.LOST, Status.NO_DECISION]).sum())
    if won < settings.min_won or not_won < settings.min_not_won:
        raise DataMinimumError(
            f"too little history to train: {won:,} won and {not_won:,} lost or no-decision resolved deals; "
            f"need at least {settings.min_won:,} and {settings.min_not_won:,} (min_won / min_not_won)"
        )


def cohort_warning(rows: pd.DataFrame, ratio: float) -> str:
    """A warning when the label rate of the newest fifth of deals (by creation: a cohort)
    differs from the older deals' by more than `ratio` either way: censoring (recent slow
    outcomes missing) or a real shift, worth a look before trusting the model."""
    created = rows["as_of"] - pd.to_timedelta(rows["age_days"], unit="D")
    recent = created >= created.quantile(0.8)
    if recent.all() or not recent.any():
        return ""
    new, old = rows.loc[recent, "label"].mean(), rows.loc[~recent, "label"].mean()
    if min(new, old) > 0 and max(new / old, old / new) <= ratio:
        return ""
    return (
        f"the label rate of the newest fifth of deals ({new:.1%}) differs from the older ones' "
        f"({old:.1%}): recent outcomes may be censored (slow losses not closed yet) or the "
        f"business changed; the forward test shows what it costs"
    )


def _icp_rules(settings: TrainSettings, progress: Progress):
    if not settings.icp:
        return ()
    path = Path(settings.icp)
    if not path.is_file():
        if settings.icp == TrainSettings.icp:
            progress(f"no ICP file at {path}: training without the documented ICP")
            return ()
        raise InputError(f"ICP file {path} does not exist (setting icp)")
    return load_icp(path)


def _learned_categories(tables: CrmTables, train: pd.DataFrame) -> dict[str, float]:
    """Each forecast category's win rate on the training slice: the reps' calls, calibrated."""
    calls = crm_baselines(tables, train[["opportunity_id", "as_of"]])
    calls = train[["opportunity_id", "as_of", "label"]].merge(calls, on=["opportunity_id", "as_of"])
    return calls.dropna(subset=["rep_category"]).groupby("rep_category")["label"].mean().to_dict()


@dataclass(frozen=True)
class TrainingRows:
    """Snapshots with features and labels, cut into slices, and what was learned to build them."""

    parts: dict[str, pd.DataFrame]  # slice name -> rows (features, label, label_in_quarter, ...)
    boundaries: pd.Series
    state: FeatureState
    state_before: pd.Timestamp
    cutoff: pd.Timestamp
    horizon: float
    rules: tuple
    scheme: str

    @property
    def grid(self) -> bool:
        return self.scheme == "grid"


def training_rows(
    tables: CrmTables, settings: TrainSettings, progress: Progress = silent
) -> TrainingRows:
    """Snapshots (docs/features.md), their features and labels, in time slices."""
    check_minimums(tables, settings)
    deals = tables.opportunities
    cutoff = last_event(tables) + pd.Timedelta(microseconds=1)
    rules = _icp_rules(settings, progress)
    snap_settings = settings.snapshots()
    grid = snap_settings.scheme == "grid"
    horizon = settings.horizon_days or label_horizon(deals, cutoff)

    progress("sampling snapshots and building features")
    snaps = snapshots(deals, cutoff, snap_settings, horizon)
    if grid:
        if snaps.empty:
            raise DataMinimumError(
                f"no snapshot has a complete label window: the export spans less than the label "
                f"horizon of {horizon:g} days (horizon_days)"
            )
        try:
            slices, boundaries = date_slices(
                snaps["as_of"], snaps["opportunity_id"], horizon, settings.shares(), settings.seed
            )
        except ValueError as exc:
            raise DataMinimumError(str(exc)) from exc
        snaps = snaps.assign(slice=slices)
        snaps = snaps[snaps["slice"] != PURGED]
        state_before = boundaries["calibration"]
    else:
        boundaries = settings.shares().boundaries(deals)
        snaps = snaps.assign(slice=assign_slices(snaps, deals, boundaries))
        state_before = boundaries["validation"]
    # Learned once, from history before the calibration (grid) or validation slice, kept for scoring.
    state = fit_feature_state(tables, state_before, rules, maturity_days=horizon)
    features = build_features(tables, snaps[["opportunity_id", "as_of"]], state)
    rows = snaps.merge(features, on=["opportunity_id", "as_of"], validate="one_to_one")
    closed_us = micros(
        rows["opportunity_id"].map(
            deals.set_index(Opportunities.opportunity_id)[Opportunities.closed_at]
        )
    )
    as_of_us = micros(rows["as_of"])
    # Won before the snapshot's quarter ends (and, on the grid, within the label window).
    in_quarter_end = quarter_end_micros(as_of_us)
    if grid:
        in_quarter_end = np.minimum(in_quarter_end, as_of_us + int(horizon * DAY))
    rows["label_in_quarter"] = (
        (rows["outcome"] == Status.WON.value) & (closed_us < in_quarter_end)
    ).astype(np.int64)
    # Not won within the window: lost within it, or no decision (closed as such, or still
    # undecided when the window ends). Only read for rows not won (model/outcomes.py).
    rows["label_no_decision"] = (
        rows["outcome"].isin([Status.NO_DECISION.value, "open"]).astype(np.int64)
    )
    warning = cohort_warning(rows, settings.cohort_warning_ratio)
    if warning:
        progress(f"WARNING: {warning}")
    if not settings.rep_inputs:
        rows = without_rep_inputs(rows)
    parts = {name: rows[rows["slice"] == name] for name in SLICES}
    progress("slices: " + ", ".join(f"{name} {len(part):,}" for name, part in parts.items()))
    return TrainingRows(
        parts, boundaries, state, state_before, cutoff, horizon, rules, snap_settings.scheme
    )


def without_rep_inputs(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with the reps' inputs blanked: a feature missing on every training row never
    makes a split, so the model cannot use it, whatever scoring later passes in."""
    return rows.assign(**{name: np.nan for name in sorted(REP_INPUTS)})


def _heroic_ids(tables: CrmTables, prepared: TrainingRows, settings: TrainSettings) -> pd.Series:
    """The ids of the deals the heroic-win rule flags."""
    deals = tables.opportunities
    flagged = heroic_wins(tables, prepared.rules, settings.heroics())
    return deals.loc[flagged, Opportunities.opportunity_id]


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
        scores = ", ".join(
            f"{metric} {value:.4f}" for _, metric, value, _ in env.evaluation_result_list
        )
        progress(f"{what}: round {env.iteration + 1:,} of at most {env.end_iteration:,} ({scores})")

    return report


def _fit(
    prepared: TrainingRows,
    settings: TrainSettings,
    sample_weight: np.ndarray,
    label: str = "label",
    progress: Progress = silent,
    what: str = "win model",
) -> WinProbabilityModel:
    """Boost on the train slice, stop early on validation, calibrate on the calibration slice."""
    train, val, cal = (prepared.parts[name] for name in SLICES[:3])
    for name, part in zip(SLICES[:3], (train, val, cal), strict=True):
        if part[label].nunique() < 2:  # too little history: a backtest skips the period
            raise DataMinimumError(
                f"the {name} slice needs both won and not-won rows ({label}); it has "
                f"{len(part):,} rows: more history, or a shorter horizon_days"
            )
    return settings.model().fit(
        train[FEATURE_NAMES],
        train[label],
        X_val=val[FEATURE_NAMES],
        y_val=val[label],
        X_cal=cal[FEATURE_NAMES],
        y_cal=cal[label],
        sample_weight=sample_weight,
        callbacks=[round_progress(progress, what)],
    )


def _weights(prepared: TrainingRows, heroic_ids: pd.Series, settings: TrainSettings) -> np.ndarray:
    train = prepared.parts["train"]
    is_heroic = train["opportunity_id"].isin(heroic_ids).to_numpy()
    return train["weight"].to_numpy() * np.where(is_heroic, settings.heroic_weight, 1.0)


def fit_recipe(
    tables: CrmTables, settings: TrainSettings, progress: Progress = silent
) -> tuple[WinProbabilityModel, FeatureState]:
    """The win model and its feature state, nothing else: what the forward test replays."""
    prepared = training_rows(tables, settings)
    weight = _weights(prepared, _heroic_ids(tables, prepared, settings), settings)
    return _fit(prepared, settings, weight, progress=progress), prepared.state


def fit_and_evaluate(
    tables: CrmTables,
    settings: TrainSettings,
    truth: Truth | None = None,
    progress: Progress = silent,
) -> TrainResult:
    """Snapshots, features, time slices, the model, and every contender on the same test rows."""
    prepared = training_rows(tables, settings, progress)
    deals = tables.opportunities
    parts, boundaries, state = prepared.parts, prepared.boundaries, prepared.state
    cutoff, horizon, grid = prepared.cutoff, prepared.horizon, prepared.grid
    train, test = parts["train"], parts["test"]
    heroic_ids = _heroic_ids(tables, prepared, settings)
    is_heroic = train["opportunity_id"].isin(heroic_ids).to_numpy()
    weight = _weights(prepared, heroic_ids, settings)

    def fit(sample_weight: np.ndarray, label: str = "label") -> WinProbabilityModel:
        what = "win model" if label == "label" else "won-this-quarter model"
        return _fit(prepared, settings, sample_weight, label, progress, what)

    progress("training LightGBM (early stopping on the validation slice), calibrating")
    model = fit(weight)
    unweighted = None
    if settings.heroic_weight < 1.0:
        progress(f"heroics: {is_heroic.sum():,} training rows down-weighted; refitting without")
        plain = fit(train["weight"].to_numpy())
        unweighted = evaluate(test["label"], plain.predict_proba(test[FEATURE_NAMES])[:, 1])

    in_quarter, in_quarter_metrics = None, {}
    if settings.in_quarter_model:
        # Winning this quarter is not winning ever (deals slip): the same features, labelled won
        # before the end of the snapshot's quarter, for `dealscore compare` (docs/forecast.md).
        progress("training the won-this-quarter model")
        try:
            in_quarter = fit(weight, "label_in_quarter")
            in_quarter_metrics = evaluate(
                test["label_in_quarter"], in_quarter.predict_proba(test[FEATURE_NAMES])[:, 1]
            )
        except ValueError as exc:  # too few in-quarter wins in a slice: compare uses slips
            progress(f"no won-this-quarter model: {exc}")

    independent = None
    has_rep_inputs = bool(train[sorted(REP_INPUTS)].notna().to_numpy().any())
    if settings.rep_inputs and settings.independent_contender and has_rep_inputs:
        progress("training the independent model (without the reps' forecasts)")
        blank = {name: without_rep_inputs(part) for name, part in parts.items()}
        independent = _fit(
            replace(prepared, parts=blank), settings, weight, progress=progress, what="independent"
        )

    no_decision: WinProbabilityModel | BaseRate | None = None
    if settings.outcome_model:
        progress("training the no-decision model (how the deals not won end)")
        not_won = {name: part[part["label"] == 0] for name, part in parts.items()}
        try:
            no_decision = _fit(
                replace(prepared, parts=not_won),
                settings,
                weight[train["label"].to_numpy() == 0],
                "label_no_decision",
                progress,
                "no-decision model",
            )
        except DataMinimumError as exc:  # e.g. an export without no-decision deals
            progress(f"no no-decision model: {exc}")
        else:
            no_decision = _or_base_rate(
                no_decision, not_won, settings.min_no_decision_auc, progress
            )

    progress("evaluating against the baselines on the test slice")
    logistic = logistic_baseline().fit(train[FEATURE_NAMES], train["label"])
    keys = test[["opportunity_id", "as_of"]]
    crm = keys.merge(crm_baselines(tables, keys), on=["opportunity_id", "as_of"], how="left")
    learned = crm["rep_category"].map(_learned_categories(tables, train))
    predictions = {
        "model": model.predict_proba(test[FEATURE_NAMES])[:, 1],
        **(
            {"model_without_reps": independent.predict_proba(test[FEATURE_NAMES])[:, 1]}
            if independent is not None
            else {}
        ),
        "logistic_regression": logistic.predict_proba(test[FEATURE_NAMES])[:, 1],
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
    heroics = Heroics(flagged=len(heroic_ids), won=won, weight=settings.heroic_weight)
    if truth is not None:
        heroic = truth.deals.set_index("opportunity_id")["heroic"]
        heroics = replace(
            heroics,
            true_heroic=int(heroic.sum()),
            true_flagged=int(heroic_ids.map(heroic).fillna(False).astype(bool).sum()),
        )
    if unweighted is not None:
        heroics = replace(
            heroics,
            weighted=evaluate(test["label"], predictions["model"]),
            unweighted=unweighted,
        )
    outcomes = None
    if no_decision is not None:
        outcomes = _outcome_comparison(
            test, predictions, no_decision, parts["train"], crm["rep_probability"]
        )
    drift_reference = latest_pipeline_reference(tables, cutoff, state, model)
    return TrainResult(
        model=model,
        feature_state=state,
        comparison=compare(test, predictions),
        outcomes=by_outcome(test, predictions["model"]),
        slice_rows={name: len(part) for name, part in parts.items()},
        boundaries=boundaries,
        test=test.reset_index(drop=True),
        predictions=predictions,
        heroics=heroics,
        reference=drift_reference,
        won_profile=won_profile(train[FEATURE_NAMES], train["label"].to_numpy()),
        no_decision=no_decision,
        outcome_metrics=outcomes,
        in_quarter=in_quarter,
        in_quarter_metrics=in_quarter_metrics,
        window={
            "first_created": deals[Opportunities.created_at].min(),
            "cutoff": cutoff,
            "state_fitted_before": prepared.state_before,
            **{f"{name}_from": boundaries[name] for name in boundaries.index},
        },
        horizon_days=horizon if grid else None,
        scheme=prepared.scheme,
    )


def _or_base_rate(
    model: WinProbabilityModel,
    not_won: dict[str, pd.DataFrame],
    min_auc: float,
    progress: Progress,
) -> WinProbabilityModel | BaseRate:
    """The no-decision model, or the base rate when it barely ranks the validation slice's
    deals not won (too little history to learn how they end). Ranking, not log loss: the
    share of no decisions moves between time slices, which says nothing about the model."""
    rate = float(not_won["train"]["label_no_decision"].mean())
    val = not_won["validation"]
    y = val["label_no_decision"].to_numpy()
    auc = (
        roc_auc_score(y, model.predict_proba(val[FEATURE_NAMES])[:, 1])
        if len(np.unique(y)) == 2
        else float("nan")
    )
    if auc >= min_auc:
        return model
    progress(
        f"the no-decision model ranks the validation slice at ROC AUC {auc:.3f}, below "
        f"min_no_decision_auc {min_auc}: the rest is split by the base rate, {rate:.1%}"
    )
    return BaseRate(rate)


def _outcome_comparison(
    test: pd.DataFrame,
    predictions: dict[str, np.ndarray],
    no_decision: WinProbabilityModel | BaseRate,
    train: pd.DataFrame,
    rep_probability: pd.Series,
) -> pd.DataFrame:
    """The three outcomes on the test rows: the model's, and what P(won) alone gives when the
    rest is split by the training rows' share of no decisions (the model's and the reps')."""
    outcome = outcome_labels(test["label"], test["label_no_decision"])
    q = no_decision.predict_proba(test[FEATURE_NAMES])[:, 1]
    base = float(train.loc[train["label"] == 0, "label_no_decision"].mean())
    flat = np.full(len(test), base)
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
    their calibrated scores; the population of a nightly run on the training export. (Years of
    training snapshots are another population: history that accumulates would "drift" by
    construction, and one segment's rate at many dates would fill bins of its own.)"""
    pipeline = build_features(tables, cutoff, state)
    if pipeline.empty:
        return Reference()
    scored = pipeline[FEATURE_NAMES].assign(
        win_probability=model.predict_proba(pipeline[FEATURE_NAMES])[:, 1]
    )
    return reference(scored, [*FEATURE_NAMES, "win_probability"])


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
