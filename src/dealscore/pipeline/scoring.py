"""Job: score every deal open at as_of with the champion model, explain it, write it back.

Same feature code as training (`build_features` with the model's fitted feature state), reasons
from the model's precomputed path credits, one transaction per destination. Nothing is written
when more than `max_rejected_share` of the open deals cannot be scored.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import pydantic.dataclasses
from pydantic import Field

from dealscore.errors import DealscoreError, InputError
from dealscore.explain.factors import NONE, change_reasons, explain
from dealscore.features import build_features
from dealscore.features.build import snapshots_at
from dealscore.features.deal import CALENDAR_FEATURES, current_stage
from dealscore.features.forecast import REP_INPUTS
from dealscore.features.icp import segment_values
from dealscore.model.bundle import LoadedModel, ModelBundle
from dealscore.model.drift import (
    Reference,
    assess,
    bin_counts,
    category_counts,
    shift_since_previous,
)
from dealscore.model.outcomes import no_decision, three_outcomes
from dealscore.model.scoring import DEFAULT_BANDS, bands, trends
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables, Opportunities
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID, FeatureRows
from dealscore.schemas.keys import lookup
from dealscore.schemas.scores import Band, Rejected, RejectedRows, ScoreRows, Scores, Trend
from dealscore.schemas.tables import TIMESTAMP_DTYPE, values
from dealscore.settings import SETTINGS

Probability = Annotated[float, Field(ge=0, le=1)]


@pydantic.dataclasses.dataclass(frozen=True, config=SETTINGS)
class ScoreSettings:
    model: str = ""  # "": the champion of the export's own CRM (tracking.registry.champion_uri)
    out: str = "sqlite:///scores.db"
    format: Literal["parquet", "csv"] = "parquet"  # for a folder destination
    band_a: Probability = DEFAULT_BANDS[0]
    band_b: Probability = DEFAULT_BANDS[1]
    band_c: Probability = DEFAULT_BANDS[2]
    steady: Probability = 0.05  # a move of at most this much is a "steady" trend
    max_rejected_share: Probability = 0.05
    psi_warning: Annotated[float, Field(gt=0)] = 0.2
    tracking_uri: str = ""
    track: bool = True  # log the scoring run (counts, drift) to MLflow
    experiment: str = "dealscore-scoring"
    engine: Literal["pandas", "spark"] = "pandas"  # one process, or Spark (docs/spark.md)
    spark_master: str = ""  # empty: the active session, else local[*]
    spark_groups: Annotated[int, Field(ge=0)] = 0  # groups scored in parallel; 0: 4 per core
    # The rep's own forecast stays a model input, but as a reason it tells the rep only what
    # they said: left out of the reasons unless this is set.
    rep_reasons: bool = False

    def __post_init__(self) -> None:
        if not self.band_a > self.band_b > self.band_c:
            raise ValueError(
                f"bands must decrease: band_a > band_b > band_c, got {self.band_a}, "
                f"{self.band_b}, {self.band_c}"
            )


class ModelMismatchError(InputError):
    """The model expects features this version of dealscore does not build."""


class TooManyRejectedError(DealscoreError, RuntimeError):
    """More open deals could not be scored than the settings allow; nothing was written."""

    exit_code = 1  # the export is at fault


@dataclass(frozen=True)
class ScoreResult:
    scores: pd.DataFrame
    rejected: pd.DataFrame
    open_deals: int
    destination: str
    model: LoadedModel
    as_of: pd.Timestamp
    drift: pd.Series  # PSI per input, segment ("segment.<name>") and for the score, all logged
    seconds: dict[str, float] = field(default_factory=dict)
    # What moved beyond psi_warning and chance, one plain sentence each (model/drift.py).
    drift_warnings: tuple[str, ...] = ()

    @functools.cached_property  # read by the CLI and the MLflow run: computed once
    def shift_since_previous(self) -> float | None:
        """PSI of the scores against the previous run's, on the deals scored both times."""
        return shift_since_previous(
            self.scores["win_probability"].to_numpy(dtype=float),
            self.scores["previous_probability"].to_numpy(dtype=float),
        )

    def by_band(self) -> pd.DataFrame:
        """Deals and their expected amount per band, A to D (a band with none: zeros)."""
        grouped = self.scores.groupby("band")
        return pd.DataFrame(
            {"deals": grouped.size(), "expected_amount": grouped["expected_amount"].sum()}
        ).reindex(values(Band), fill_value=0)


def score_deals(
    tables,
    loaded: LoadedModel,
    as_of: pd.Timestamp,
    settings: ScoreSettings,
    progress: Progress = silent,
    *,
    scored_at: pd.Timestamp,
    previous: pd.DataFrame | None = None,
) -> tuple[ScoreRows, RejectedRows, FeatureRows]:
    """(scores, rejected, features) for every deal open at as_of, stamped `scored_at` (the job
    reads the clock). With `previous` (the store's latest earlier score per deal,
    `ScoreStore.previous`), each row carries it, the trend and, where the score moved, why."""
    bundle = loaded.bundle
    features = _features(tables, loaded, as_of)
    X = features[bundle.feature_names]
    progress(f"features built for {len(features):,} open deals; scoring and explaining")
    p, factors = explain(bundle, X, progress=progress, rep_reasons=settings.rep_reasons)
    bad, rules, reasons = _unscorable(tables, bundle, features, p)
    frame = _score_rows(tables, loaded, features, X, (p, factors), settings, scored_at)
    if previous is not None:
        frame = carry_previous(frame, previous, settings.steady)
        hidden = frozenset() if settings.rep_reasons else REP_INPUTS
        frame["change_reason"] = why_moved(tables, bundle, frame, features, hidden, progress)
    frame = frame[list(Scores.to_schema().columns)]
    rejected = rejects(frame[bad], rules[bad].astype(str), reasons[bad].astype(str))
    return frame[~bad].reset_index(drop=True), rejected.reset_index(drop=True), features


def _features(tables: CrmTables, loaded: LoadedModel, as_of: pd.Timestamp) -> pd.DataFrame:
    """The features of the deals open at as_of: ModelMismatchError if the model needs more."""
    bundle = loaded.bundle
    features = build_features(tables, as_of, bundle.feature_state)
    missing = [name for name in bundle.feature_names if name not in features.columns]
    if missing:
        raise ModelMismatchError(
            f"model {loaded.name} v{loaded.version} needs {len(missing)} feature(s) this "
            f"dealscore does not build, e.g. {missing[:5]}: retrain it with this version"
        )
    return features


def _unscorable(
    tables: CrmTables, bundle: ModelBundle, features: pd.DataFrame, p: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(which feature rows cannot be scored, the rule and the reason of each): a stage the model
    never saw, or no finite probability."""
    bad = np.zeros(len(features), dtype=bool)
    rules = np.full(len(features), "", dtype=object)
    reasons = np.full(len(features), "", dtype=object)
    known = set(bundle.feature_state.stage_order)
    # A stage the model does not know has no rank (nor has a deal without a stage): only those
    # rows need their stage's name, not the million that have a rank.
    unranked = features["stage_rank"].isna().to_numpy()
    if known and unranked.any():
        keys = features.loc[unranked, [OPPORTUNITY_ID, AS_OF]]
        stage = current_stage(tables, snapshots_at(tables, keys))
        unknown = pd.notna(stage) & ~pd.Series(stage).isin(known).to_numpy()
        at = np.flatnonzero(unranked)[unknown]
        bad[at] = True
        rules[at] = "unknown_stage"
        reasons[at] = [f"stage {s!r} is unknown to the model; retrain" for s in stage[unknown]]
    broken = ~np.isfinite(p) & ~bad
    bad |= broken
    rules[broken] = "no_probability"
    reasons[broken] = "the model gave no finite probability"
    return bad, rules, reasons


def _score_rows(
    tables: CrmTables,
    loaded: LoadedModel,
    features: pd.DataFrame,
    X: pd.DataFrame,
    explained: tuple[np.ndarray, dict[str, np.ndarray]],
    settings: ScoreSettings,
    scored_at: pd.Timestamp,
) -> pd.DataFrame:
    """The score rows of the features, from the probabilities and factors `explain` gave."""
    bundle = loaded.bundle
    p, factors = explained
    q = (
        no_decision(bundle.no_decision, X)
        if bundle.no_decision is not None  # None: trained without it, or saved before it
        else np.full(len(X), np.nan)
    )
    outcomes = three_outcomes(p, q)
    deals = tables.opportunities.set_index(Opportunities.opportunity_id)
    amount = (
        lookup(features[OPPORTUNITY_ID], deals[Opportunities.amount]).to_numpy(dtype=float)
        if Opportunities.amount in deals
        else np.full(len(features), np.nan)
    )
    frame = pd.DataFrame(
        {
            # pandas' text as it is (no copy when it is already): to_numpy() would make a
            # million str objects only for the frame to turn them back into text.
            OPPORTUNITY_ID: features[OPPORTUNITY_ID].astype("str").array,
            # The array keeps the time zone: to_numpy() would make a million Timestamp objects.
            "as_of": features["as_of"].array,
            "scored_at": scored_at,
            "model_name": loaded.name,
            "model_version": loaded.version,
            "run_id": loaded.run_id,
            "win_probability": p,
            "lost_probability": outcomes[:, 1],
            "no_decision_probability": outcomes[:, 2],
            "horizon_days": bundle.horizon_days or np.nan,
            "band": bands(np.nan_to_num(p), (settings.band_a, settings.band_b, settings.band_c)),
            "expected_amount": amount * p,
            "previous_probability": np.nan,
            "previous_as_of": pd.Series(pd.NaT, index=features.index, dtype=TIMESTAMP_DTYPE),
            "trend": "new",
            "change_reason": NONE,
            **factors,
        }
    )
    frame["as_of"] = frame["as_of"].astype(TIMESTAMP_DTYPE)
    frame["scored_at"] = frame["scored_at"].astype(TIMESTAMP_DTYPE)
    return frame


def carry_previous(scores: pd.DataFrame, previous: pd.DataFrame, steady: float) -> pd.DataFrame:
    """The score rows with each deal's latest earlier score by this model name and the trend
    since; `previous` as `ScoreStore.previous` reads it."""
    out = scores.drop(columns=["previous_probability", "previous_as_of"]).merge(
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


def rejects(rows: pd.DataFrame, rule: object, reason: object) -> pd.DataFrame:
    """Rejected rows for these score rows: their keys and model, with the rule and reason."""
    keys = [c for c in Rejected.to_schema().columns if c not in ("rule", "reason")]
    return rows[keys].assign(rule=rule, reason=reason)


def contract_rejects(
    held: pd.DataFrame, as_of: pd.Timestamp, loaded: LoadedModel, scored_at: pd.Timestamp
) -> pd.DataFrame:
    """Reject rows, rule `contract`, for the quarantined deals (`Quarantined.deals`: one per
    opportunities row taken out) that may have been open at as_of: all but those whose trusted
    dates say they were created after it or closed before it (a date that could not be read, or
    that broke a rule, is not trusted). A deal the export gives no id is named by its position
    in the opportunities table, "row 17" (1: the first row after the header), so the reject
    still counts and says where to look."""
    created_ok = held["created_at"].isna() | (held["created_at"] < as_of)
    open_then = held["closed_at"].isna() | (held["closed_at"] >= as_of)
    deals = held[created_ok & open_then]
    ids = deals[OPPORTUNITY_ID]
    named = ids.astype(str).where(ids.notna(), "row " + deals["row"].astype(str))
    return pd.DataFrame(
        {
            OPPORTUNITY_ID: named.to_numpy(),
            "as_of": pd.Series(as_of, index=range(len(deals)), dtype=TIMESTAMP_DTYPE),
            "model_name": loaded.name,
            "model_version": loaded.version,
            "scored_at": pd.Series(scored_at, index=range(len(deals)), dtype=TIMESTAMP_DTYPE),
            "rule": "contract",
            "reason": deals["reason"].to_numpy(),
        }
    )


def drift_inputs(features: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """What drift is measured on: the features (calendar ones excluded) and the probability."""
    probability = scores.set_index(OPPORTUNITY_ID)["win_probability"]
    return features.drop(columns=list(CALENDAR_FEATURES)).assign(
        win_probability=lookup(features[OPPORTUNITY_ID], probability)
    )


def drift_segments(tables: CrmTables, features: pd.DataFrame) -> pd.DataFrame:
    """The segment (industry, size band, region, product, lead source) of each feature row: what
    drift compares instead of the segment values learned from past outcomes."""
    return segment_values(tables, snapshots_at(tables, features[[OPPORTUNITY_ID, AS_OF]]))


def drift_tables(tables: CrmTables) -> CrmTables:
    """What `measure_drift` reads of the export: the deals and their accounts."""
    return CrmTables(tables.opportunities, accounts=tables.accounts)


def measure_drift(
    tables: CrmTables,
    features: pd.DataFrame,
    scores: pd.DataFrame,
    ref: Reference,
    psi_warning: float,
) -> tuple[pd.Series, tuple[str, ...]]:
    """(PSI of every input and segment, the drift warnings) of the open deals against the
    training reference."""
    counts = bin_counts(ref, drift_inputs(features, scores))
    return assess(ref, counts, category_counts(drift_segments(tables, features)), psi_warning)
