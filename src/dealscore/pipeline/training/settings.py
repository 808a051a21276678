"""The training recipe: every setting of training, its defaults from the classes that use them,
and what the recipe needs of an export in one sentence."""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal

import pydantic.dataclasses
from pydantic import Field

from dealscore.features import SnapshotSettings
from dealscore.features.heroics import HeroicsRule
from dealscore.io.icp import BUILTIN_ICP
from dealscore.model.estimator import RUNGS, Rung, WinProbabilityModel
from dealscore.settings import SETTINGS, FileSetting, default

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

    def model(
        self,
        rung: Rung = "lightgbm",
        penalty: float | None = None,
        timing: tuple[str, ...] = (),
        refit_correction: bool = False,
        timed_calibration: bool = False,
    ) -> WinProbabilityModel:
        return WinProbabilityModel(
            rung=rung,
            penalty=penalty,
            timing=timing,
            refit_correction=refit_correction,
            timed_calibration=timed_calibration,
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
