"""A score against the deal's previous one: the previous score carried onto each row, the trend
since, and why a score that moved did, in the seller's words of the reasons (the features are
built again at the previous run's time, from the rows dated before it only)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.explain.factors import CHUNK, change_reasons
from dealscore.features import build_features
from dealscore.model.bundle import LoadedModel, ModelBundle
from dealscore.model.scoring import trends
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID
from dealscore.schemas.scores import Trend

MARGIN = 1e-6  # far above two sums' rounding, far below any move a reason is for


def carry_previous(scores: pd.DataFrame, previous: pd.DataFrame, steady: float) -> pd.DataFrame:
    """The score rows with each deal's latest earlier score by this model name and the trend
    since; `previous` as `ScoreStore.previous` reads it."""
    # The score rows' own placeholders for it go first (rows without them need none).
    placeholders = ["previous_probability", "previous_as_of"]
    out = scores.drop(columns=placeholders, errors="ignore").merge(
        previous, on=OPPORTUNITY_ID, how="left"
    )
    out["trend"] = trends(
        out["win_probability"].to_numpy(),
        out["previous_probability"].to_numpy(dtype=float),
        steady,
        (out["previous_model_version"] == out["model_version"]).to_numpy(dtype=bool),
    )
    return out.drop(columns=["previous_model_version"])


def why_moved(
    tables: CrmTables,
    bundle: ModelBundle,
    scores: pd.DataFrame,
    features: pd.DataFrame,
    hidden: frozenset[str] = frozenset(),
    progress: Progress = silent,
) -> np.ndarray:
    """Per score row (aligned with `features`), why an improving or declining score moved since
    its previous_as_of: the features are built again at that time, from the rows dated before
    it only, for the moved deals alone; None for the other rows."""
    out = np.full(len(scores), None, dtype=object)
    moved = scores["trend"].isin([Trend.IMPROVING, Trend.DECLINING]).to_numpy()
    if not moved.any():
        return out
    progress(f"explaining why {int(moved.sum()):,} scores moved since their previous run")
    pairs = pd.DataFrame(
        {
            OPPORTUNITY_ID: scores.loc[moved, OPPORTUNITY_ID].to_numpy(),
            AS_OF: scores.loc[moved, "previous_as_of"].to_numpy(),
        }
    )
    now = features[moved].set_index(OPPORTUNITY_ID)
    # A deal the export no longer shows open then (its creation date was edited) has no reason.
    then = build_features(tables, pairs, bundle.feature_state).set_index(OPPORTUNITY_ID)
    known = now.index.isin(then.index)
    reasons = change_reasons(
        bundle.estimator,
        bundle.feature_names,
        then.loc[now.index[known]],
        now[known],
        bundle.feature_state,
        hidden=hidden,
    )
    rows = np.flatnonzero(moved)[known]
    out[rows] = reasons
    return out


def moved_reasons(
    tables: CrmTables,
    loaded: LoadedModel,
    features: pd.DataFrame,
    previous: pd.DataFrame,
    steady: float,
    hidden: frozenset[str] = frozenset(),
    progress: Progress = silent,
) -> np.ndarray:
    """`why_moved` for the rows whose score may have moved beyond `steady`, from a plain
    prediction made before the reasons (a chunk at a time): the tables are still here."""
    bundle = loaded.bundle
    X = features[bundle.feature_names]
    p = np.concatenate(
        [
            bundle.estimator.predict_proba(X.iloc[start : start + CHUNK])[:, 1]
            for start in range(0, len(X), CHUNK)
        ]
    )
    rows = pd.DataFrame(
        {
            OPPORTUNITY_ID: features[OPPORTUNITY_ID].to_numpy(),
            "model_version": loaded.version,
            "win_probability": p,
        }
    )
    # A hair inside `steady`: the reasons' own pass sums the same raw score another way.
    rows = carry_previous(rows, previous, steady - MARGIN)
    return why_moved(tables, bundle, rows, features, hidden, progress)
