"""What scoring needs besides the CRM tables: the fitted model and its feature state, and which
registered version it is. Saved inside the MLflow model (tracking.pyfunc), used without MLflow."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dealscore.features import FeatureState
from dealscore.model.drift import Reference
from dealscore.model.estimator import WinProbabilityModel
from dealscore.model.totals import CollectiveError
from dealscore.schemas.tables import coverage_change


@dataclass
class ModelBundle:
    """Everything scoring needs besides the CRM tables."""

    estimator: WinProbabilityModel  # the rung of the model ladder that scores, calibrated
    feature_state: FeatureState
    feature_names: list[str]
    metadata: dict[str, str] = field(default_factory=dict)
    reference: Reference = field(default_factory=Reference)  # training distributions, for drift
    in_quarter: WinProbabilityModel | None = None  # P(won before the quarter ends), for compare
    in_quarter_error: CollectiveError | None = None  # its quarter totals' past error
    horizon_days: float | None = None  # win_probability = P(won within this many days)
    forward: pd.DataFrame | None = None  # the recipe's forward test (pipeline/forward.py), per date
    # What deals that went on to win looked like, per stage (features.sentences.won_profile):
    # reasons compare each deal with it. None in bundles saved before it existed.
    won_profile: pd.DataFrame | None = None
    # P(no decision | not won within H), to split the rest (model/outcomes.py); None: not trained.
    no_decision: WinProbabilityModel | None = None
    # The training export's filled `table.column`s (CrmTables.coverage): scoring another CRM's
    # export, or promoting over another CRM's champion, is caught by comparing them.
    coverage: tuple[str, ...] | None = None

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated win probability for each row of a feature frame."""
        missing = [name for name in self.feature_names if name not in features.columns]
        if missing:
            raise ValueError(
                f"feature frame lacks {len(missing)} of the model's features, e.g. {missing[:5]}"
            )
        return self.estimator.predict_proba(features[self.feature_names])[:, 1]


@dataclass(frozen=True)
class LoadedModel:
    bundle: ModelBundle
    name: str
    version: str
    run_id: str
    alias: str = ""  # the alias it was loaded by (champion), if any
    note: str = ""  # what the user should know about how it was loaded (files not checked)

    def describe(self) -> str:
        """'model dealscore-demo-crm v3 (champion)'."""
        return f"model {self.name} v{self.version}" + (f" ({self.alias})" if self.alias else "")

    def rung(self) -> str:
        """Which rung of the model ladder scores, and why (as training said it)."""
        why = self.bundle.metadata.get("rung_reason", "")
        return f"the {self.bundle.estimator.rung} rung of the model ladder" + (
            f" ({why})" if why else ""
        )

    def mismatch(self, coverage: tuple[str, ...]) -> str:
        """The warning when an export fills other columns than this model's training export
        (`CrmTables.coverage`); "" when they match."""
        change = coverage_change(self.bundle.coverage, coverage)
        if not change:
            return ""
        return f"{change} ({self.describe()}): is it the CRM the model was trained on?"
