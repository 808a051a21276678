"""What training returns: the fitted models, every contender's metrics on the same test rows,
what the heroic-win rule did, and where the run was tracked."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dealscore.features import FEATURE_NAMES, FeatureState
from dealscore.model.bundle import ModelBundle
from dealscore.model.drift import Reference
from dealscore.model.estimator import WinProbabilityModel
from dealscore.model.ladder import Ladder
from dealscore.model.totals import CollectiveError
from dealscore.pipeline.forward import ForwardTest


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
