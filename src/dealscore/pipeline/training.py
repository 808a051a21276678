"""Training: grid snapshots of the whole usable history, cross-fitted over purged time folds
through the model ladder (the data picks the rung), corrected for a change in the last horizon,
and every contender compared on the newest fold's out-of-fold predictions. Used by the train
job, the forward test and the backtest; logging and registering is tracking's.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pydantic.dataclasses
from pydantic import Field

from dealscore.errors import DataError
from dealscore.features import (
    FEATURE_NAMES,
    FeatureState,
    SnapshotSettings,
    build_features,
    fit_feature_state,
)
from dealscore.features.asof import last_event
from dealscore.features.baselines import crm_baselines
from dealscore.features.deal import amount_as_of
from dealscore.features.forecast import REP_INPUTS
from dealscore.features.heroics import HeroicsRule, heroic_wins
from dealscore.features.pit import DAY, micros, quarter_end_micros
from dealscore.features.sentences import won_profile
from dealscore.features.snapshots import (
    auto_horizon,
    grid_snapshots,
    history_start,
    recent_snapshots,
)
from dealscore.io.icp import BUILTIN_ICP, load_icp
from dealscore.model.bundle import ModelBundle
from dealscore.model.drift import Reference, reference
from dealscore.model.estimator import RUNGS, Rung, WinProbabilityModel
from dealscore.model.evaluation import by_outcome, compare
from dealscore.model.ladder import Ladder, fit_ladder
from dealscore.model.metrics import evaluate
from dealscore.model.outcomes import outcome_labels, outcome_metrics, three_outcomes
from dealscore.model.recent import recent_shift, win_timing
from dealscore.model.split import TimeFolds, deal_sample, time_folds
from dealscore.model.totals import CollectiveError, collective_error
from dealscore.pipeline.forward import ForwardTest, default_dates, forward_test
from dealscore.pipeline.scoring import drift_segments
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables, Opportunities, Status
from dealscore.settings import SETTINGS, FileSetting, default
from dealscore.synthetic.truth import Truth, ceiling

# What the recipe needs, in one sentence: the docs quote it and the data-minimum check says it.
RECIPE_NEEDS = (
    "dealscore trains on an export holding at least {won:,} won and {not_won:,} lost or "
    "no-decision deals, and {days:g} days of history since the first date by which it records both"
)


def _estimator_default(name: str) -> Any:
    return inspect.signature(WinProbabilityModel.__init__).parameters[name].default


@pydantic.dataclasses.dataclass(frozen=True, config=SETTINGS)
class TrainSettings:
    """The training recipe; defaults come from the classes that use them."""

    every_days: Annotated[float, Field(gt=0)] = default(SnapshotSettings, "every_days")
    horizon_days: Annotated[float, Field(ge=0)] = default(SnapshotSettings, "horizon_days")
    age_weight_days: Annotated[float, Field(gt=0)] = default(SnapshotSettings, "age_weight_days")
    folds: Annotated[int, Field(ge=2, le=20)] = 5
    # Above this many labelled rows, the folds cross-fit a random sample of whole deals holding
    # at most this many (rounds, penalty, calibration and the rung are chosen on them); the
    # chosen rung is still refitted on every row.
    crossfit_max_rows: Annotated[int, Field(ge=1000)] = 250_000
    # The rungs the data may pick from, simplest first (model/estimator.py).
    ladder: tuple[Rung, ...] = RUNGS
    # A rung replaces a simpler one only if its out-of-fold log loss is lower by more than this
    # (and by more than one standard error).
    ladder_tolerance: Annotated[float, Field(ge=0)] = 0.002
    # Read a change of the win rate in the last horizon from its early wins (model/recent.py),
    # once the labelled snapshots span enough time to tell a change from the season.
    recent_correction: bool = True
    recent_prior_sd: Annotated[float, Field(ge=0)] = 0.5
    recent_min_history_days: Annotated[float, Field(ge=0)] = 365.0
    min_won: Annotated[int, Field(ge=1)] = 40
    min_not_won: Annotated[int, Field(ge=1)] = 40
    min_history_days: Annotated[float, Field(ge=0)] = 90.0
    # Deals whose rows break the data contract leave training with them (as in scoring); above
    # this share of the export's deals nothing is trained.
    max_rejected_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    cohort_warning_ratio: float = 1.5
    n_estimators: Annotated[int, Field(ge=1)] = _estimator_default("n_estimators")
    learning_rate: Annotated[float, Field(gt=0)] = _estimator_default("learning_rate")
    num_leaves: Annotated[int, Field(ge=2)] = _estimator_default("num_leaves")
    min_child_samples: Annotated[int, Field(ge=1)] = _estimator_default("min_child_samples")
    early_stopping_rounds: Annotated[int, Field(ge=1)] = _estimator_default("early_stopping_rounds")
    calibration: Literal["auto", "sigmoid", "isotonic"] = _estimator_default("calibration")
    seed: int = 0
    # The documented ICP (YAML): "builtin" (the generated CRMs' own, shipped with dealscore),
    # a file (relative in a settings file: to that file's folder), or "" for none.
    icp: Annotated[str, FileSetting(keep=("", BUILTIN_ICP))] = BUILTIN_ICP
    in_quarter_model: bool = True
    # false: the model never sees the reps' forecasts (an independent second opinion); true
    # also fits that independent model as a contender, so the card shows what the reps add.
    rep_inputs: bool = True
    independent_contender: bool = True
    # P(no decision | not won within H): splits the rest into lost and no decision.
    outcome_model: bool = True
    forward_dates: int = 3
    # Days between forward-test dates; 0: a tenth of the history, within 14..56 days.
    forward_every_days: Annotated[float, Field(ge=0)] = 0.0
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
        if not self.ladder:
            raise ValueError("ladder must name at least one rung")

    def snapshots(self) -> SnapshotSettings:
        return SnapshotSettings(self.every_days, self.horizon_days, self.age_weight_days, self.seed)

    def heroics(self) -> HeroicsRule:
        return HeroicsRule(
            self.heroic_max_icp_score, self.heroic_min_discount, self.heroic_discount_window_days
        )

    def model(self, rung: Rung = "lightgbm", penalty: float | None = None) -> WinProbabilityModel:
        return WinProbabilityModel(
            rung=rung,
            penalty=penalty,
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            early_stopping_rounds=self.early_stopping_rounds,
            calibration=self.calibration,
            random_state=self.seed,
        )

    def needs(self) -> str:
        """What the recipe needs, in one sentence."""
        return RECIPE_NEEDS.format(
            won=self.min_won, not_won=self.min_not_won, days=self.min_history_days
        )


class DataMinimumError(DataError):
    """Too little history to train on."""


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
    fold_rows: dict[str, int]  # labelled snapshot rows per time fold, oldest first
    ladder: Ladder  # every rung of the win model, and which one scores and why
    test: pd.DataFrame  # the newest fold's snapshots with features, label and outcome
    predictions: dict[str, np.ndarray]  # every contender on the test rows, out of fold
    heroics: Heroics
    window: dict[str, pd.Timestamp] = field(default_factory=dict)
    reference: Reference = field(default_factory=Reference)  # for drift checks when scoring
    in_quarter: WinProbabilityModel | None = None  # P(won before the snapshot's quarter ends)
    in_quarter_metrics: dict[str, float] = field(default_factory=dict)
    # How its quarter totals compared with the bookings at past dates (pipeline/quarter.py).
    in_quarter_error: CollectiveError | None = None
    horizon_days: float | None = None  # win_probability = P(won within this many days)
    forward: ForwardTest | None = None  # the recipe replayed at past dates (run_forward)
    won_profile: pd.DataFrame | None = None  # won deals' typical features per stage, for reasons
    no_decision: WinProbabilityModel | None = None  # P(no decision | not won in H)
    outcome_metrics: pd.DataFrame | None = None  # three outcomes against baselines, test rows
    notes: tuple[str, ...] = ()  # what the recipe decided about this export, in words
    tracking: Tracking | None = None

    def bundle(
        self, metadata: dict[str, str] | None = None, coverage: tuple[str, ...] | None = None
    ) -> ModelBundle:
        """What scoring needs of this result: the model, its feature state and what it keeps
        (drift reference, in-quarter model, forward test, won profile, no-decision model), with
        the training cut-off in its metadata (nightly retrains once it is too old)."""
        return ModelBundle(
            estimator=self.model,
            feature_state=self.feature_state,
            feature_names=list(FEATURE_NAMES),
            metadata={"cutoff": self.window["cutoff"].isoformat(), **(metadata or {})},
            reference=self.reference,
            in_quarter=self.in_quarter,
            in_quarter_error=self.in_quarter_error,
            horizon_days=self.horizon_days,
            forward=self.forward.table if self.forward is not None else None,
            won_profile=self.won_profile,
            no_decision=self.no_decision,
            coverage=coverage,
        )


def check_minimums(
    tables: CrmTables, settings: TrainSettings, start: pd.Timestamp, cutoff: pd.Timestamp
) -> None:
    """Refuse, with the recipe's one-sentence need, an export too small or too short."""
    status = tables.opportunities[Opportunities.status]
    won = int((status == Status.WON).sum())
    not_won = int(status.isin([Status.LOST, Status.NO_DECISION]).sum())
    days = (cutoff - start) / pd.Timedelta(days=1)
    if won < settings.min_won or not_won < settings.min_not_won or days < settings.min_history_days:
        raise DataMinimumError(
            f"too little history to train: {won:,} won and {not_won:,} lost or no-decision "
            f"deals, {days:,.0f} days since {start:%Y-%m-%d}; {settings.needs()} "
            "(min_won, min_not_won, min_history_days)"
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
    return load_icp(settings.icp)


def _learned_categories(tables: CrmTables, train: pd.DataFrame) -> dict[str, float]:
    """Each forecast category's win rate on the given rows: the reps' calls, calibrated."""
    calls = crm_baselines(tables, train[["opportunity_id", "as_of"]])
    calls = train[["opportunity_id", "as_of", "label"]].merge(calls, on=["opportunity_id", "as_of"])
    return calls.dropna(subset=["rep_category"]).groupby("rep_category")["label"].mean().to_dict()


@dataclass(frozen=True)
class TrainingRows:
    """Labelled snapshots with features, their time folds, the recent unlabelled snapshots, and
    what was learned or decided to build them."""

    rows: pd.DataFrame  # features, label, label_in_quarter, label_no_decision, days_to_win, ...
    folds: TimeFolds
    state: FeatureState
    start: pd.Timestamp  # where the usable history starts (features/snapshots.history_start)
    cutoff: pd.Timestamp
    horizon: float
    rules: tuple
    recent: pd.DataFrame  # the last horizon's snapshots: features, elapsed_days, won_so_far
    notes: tuple[str, ...] = ()


def _features(tables: CrmTables, keys: pd.DataFrame, state: FeatureState) -> pd.DataFrame:
    features = build_features(tables, keys[["opportunity_id", "as_of"]], state)
    return keys.merge(features, on=["opportunity_id", "as_of"], validate="one_to_one")


def training_rows(
    tables: CrmTables, settings: TrainSettings, progress: Progress = silent
) -> TrainingRows:
    """Grid snapshots of the usable history (docs/features.md), their features, labels and
    time folds, and the recent snapshots whose windows have not ended."""
    deals = tables.opportunities
    cutoff = last_event(tables) + pd.Timedelta(microseconds=1)
    start = history_start(deals, cutoff)
    check_minimums(tables, settings, start, cutoff)
    rules = _icp_rules(settings, progress)
    notes = []
    late = (start - deals[Opportunities.created_at].min()) / pd.Timedelta(days=1)
    if late > 4 * settings.every_days:
        notes.append(
            f"training starts at {start:%Y-%m-%d}, the first date by which the export records "
            f"both a won and a lost deal: the {late:,.0f} days before it, with one outcome "
            "only, are set aside"
        )
    horizon, why = (
        (settings.horizon_days, "") if settings.horizon_days else auto_horizon(deals, cutoff)
    )
    if why:
        notes.append(f"label horizon {horizon:g} days: {why}")
    for note in notes:
        progress(note)

    progress("sampling snapshots and building features")
    snaps = grid_snapshots(deals, cutoff, settings.snapshots(), horizon, start)
    if snaps.empty:
        raise DataMinimumError(
            f"no snapshot has a complete label window: the history since {start:%Y-%m-%d} is "
            f"shorter than the label horizon of {horizon:g} days (horizon_days); "
            + settings.needs()
        )
    # Learned from history before the cut-off: the stage order reads no outcome.
    state = fit_feature_state(tables, cutoff, rules, maturity_days=horizon)
    rows = _features(tables, snaps, state)
    closed_us = micros(
        rows["opportunity_id"].map(
            deals.set_index(Opportunities.opportunity_id)[Opportunities.closed_at]
        )
    )
    as_of_us = micros(rows["as_of"])
    # Won before the snapshot's quarter ends, and within the label window.
    in_quarter_end = np.minimum(quarter_end_micros(as_of_us), as_of_us + int(horizon * DAY))
    rows["label_in_quarter"] = (
        (rows["outcome"] == Status.WON.value) & (closed_us < in_quarter_end)
    ).astype(np.int64)
    # Not won within the window: lost within it, or no decision (closed as such, or still
    # undecided when the window ends). Only read for rows not won (model/outcomes.py).
    rows["label_no_decision"] = (
        rows["outcome"].isin([Status.NO_DECISION.value, "open"]).astype(np.int64)
    )
    rows["days_to_win"] = np.where(rows["label"] == 1, (closed_us - as_of_us) / DAY, np.nan)
    warning = cohort_warning(rows, settings.cohort_warning_ratio)
    if warning:
        progress(f"WARNING: {warning}")
    recent = pd.DataFrame()
    labelled_days = (rows["as_of"].max() - rows["as_of"].min()) / pd.Timedelta(days=1)
    if settings.recent_correction and labelled_days >= settings.recent_min_history_days:
        recent = _features(tables, recent_snapshots(deals, cutoff, horizon, settings.seed), state)
    elif settings.recent_correction:
        note = (
            f"no recent correction: {labelled_days:,.0f} days of labelled snapshots cannot tell "
            f"a change of the win rate from the season (recent_min_history_days "
            f"{settings.recent_min_history_days:g})"
        )
        notes.append(note)
        progress(note)
    if not settings.rep_inputs:
        rows, recent = without_rep_inputs(rows), without_rep_inputs(recent)
    folds = time_folds(rows["as_of"], horizon, settings.folds)
    sample = ""
    if len(rows) > settings.crossfit_max_rows:
        keep = deal_sample(rows["opportunity_id"], settings.crossfit_max_rows, settings.seed)
        folds = folds.sample(keep)
        sample = (
            f" (cross-fitted on a random {int(keep.sum()):,} of them, whole deals: "
            "crossfit_max_rows; refitted on all)"
        )
    progress(
        f"{len(rows):,} labelled snapshot rows from {rows['as_of'].min():%Y-%m-%d} to "
        f"{rows['as_of'].max():%Y-%m-%d} in {folds.k} time folds (purged by {horizon:g} days)"
        f"{sample}; {len(recent):,} recent rows whose windows have not ended"
    )
    return TrainingRows(rows, folds, state, start, cutoff, horizon, rules, recent, tuple(notes))


def without_rep_inputs(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with the reps' inputs blanked: a feature missing on every training row never
    makes a split, so the model cannot use it, whatever scoring later passes in."""
    if rows.empty:
        return rows
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
        # (data, metric, value, higher is better[, stdv across folds]); none in the refit
        scores = ", ".join(f"{entry[1]} {entry[2]:.4f}" for entry in env.evaluation_result_list)
        progress(
            f"{what}: round {env.iteration + 1:,} of at most {env.end_iteration:,}"
            + (f" ({scores})" if scores else " (refit on every row)")
        )

    return report


def _ladder(
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
) -> Ladder:
    """The model ladder on `label`, every rung cross-fitted over the same folds (the linear
    rungs with `penalty`, else with the one the folds choose); `refit` false: out-of-fold
    probabilities only (a contender judged on the newest fold, never used to score)."""
    try:
        return fit_ladder(
            rows[FEATURE_NAMES],
            rows[label].to_numpy(),
            folds,
            weight,
            rows["opportunity_id"].to_numpy(),
            lambda rung: settings.model(rung, penalty),
            rungs or settings.ladder,
            settings.ladder_tolerance,
            progress=lambda message: progress(f"{what}: {message}"),
            callbacks=lambda rung: [round_progress(progress, f"{what} ({rung})")],
            refit=refit,
        )
    except ValueError as exc:  # too little history: a backtest skips the period
        raise DataMinimumError(f"{what} ({label}): {exc}; {settings.needs()}") from exc


def _side_rungs(ladder: Ladder) -> tuple[Rung, ...]:
    """The rungs a side model (won this quarter, without the reps, no decision) chooses from:
    the win model's, or the base rate when it learns nothing there. Never a richer one."""
    return tuple(dict.fromkeys(("base_rate", ladder.model.rung)))


def _weights(prepared: TrainingRows, heroic_ids: pd.Series, settings: TrainSettings) -> np.ndarray:
    rows = prepared.rows
    is_heroic = rows["opportunity_id"].isin(heroic_ids).to_numpy()
    return rows["weight"].to_numpy() * np.where(is_heroic, settings.heroic_weight, 1.0)


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
            recent["opportunity_id"].to_numpy(),
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
    weight = _weights(prepared, _heroic_ids(tables, prepared, settings), settings)
    ladder = _ladder(prepared.rows, prepared.folds, settings, weight, progress=progress)
    correct_recent(ladder, prepared, settings)
    return ladder, prepared.state


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
    heroic_ids = _heroic_ids(tables, prepared, settings)
    weight = _weights(prepared, heroic_ids, settings)
    notes = list(prepared.notes)

    win = _ladder(rows, folds, settings, weight, progress=progress)
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
        _ladder,
        settings=settings,
        progress=progress,
        rungs=_side_rungs(win),
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
