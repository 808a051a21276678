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

from dealscore.errors import DealscoreError, require_features
from dealscore.explain.factors import NONE, explain
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
from dealscore.model.scoring import DEFAULT_BANDS, bands
from dealscore.pipeline.previous import carry_previous, moved_reasons
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
    ready = prepare_scores(tables, loaded, as_of, settings, progress, previous=previous)
    return finish_scores(ready, loaded, settings, progress, scored_at=scored_at, previous=previous)


@dataclass(frozen=True)
class Prepared:
    """What scoring takes from the export's tables: once built, the tables can go before the
    scores and reasons are made (the nightly job lets them go there)."""

    features: FeatureRows
    amount: np.ndarray  # each feature row's deal amount (NaN: none)
    unknown_stage: np.ndarray  # per feature row: its stage's reason, "" where the model knows it
    # Per feature row, why its score moved since the previous run, for the rows that may have
    # moved beyond `steady` (None elsewhere); only the rows whose trend says so keep theirs.
    change_reason: np.ndarray


def prepare_scores(
    tables: CrmTables,
    loaded: LoadedModel,
    as_of: pd.Timestamp,
    settings: ScoreSettings,
    progress: Progress = silent,
    *,
    previous: pd.DataFrame | None = None,
) -> Prepared:
    """Everything scoring reads of the tables: the features of the deals open at as_of, their
    amounts and unknown stages, and, with `previous`, why the scores that moved did."""
    features = _features(tables, loaded, as_of)
    deals = tables.opportunities.set_index(Opportunities.opportunity_id)
    amount = (
        lookup(features[OPPORTUNITY_ID], deals[Opportunities.amount]).to_numpy(dtype=float)
        if Opportunities.amount in deals
        else np.full(len(features), np.nan)
    )
    change = np.full(len(features), None, dtype=object)
    if previous is not None and len(previous) and len(features):
        hidden = frozenset() if settings.rep_reasons else REP_INPUTS
        change = moved_reasons(
            tables, loaded, features, previous, settings.steady, hidden, progress
        )
    return Prepared(features, amount, _unknown_stage(tables, loaded.bundle, features), change)


def finish_scores(
    ready: Prepared,
    loaded: LoadedModel,
    settings: ScoreSettings,
    progress: Progress = silent,
    *,
    scored_at: pd.Timestamp,
    previous: pd.DataFrame | None = None,
) -> tuple[ScoreRows, RejectedRows, FeatureRows]:
    """`score_deals` from what `prepare_scores` took of the tables: the probabilities, the
    reasons, the score rows and the rejects."""
    bundle, features = loaded.bundle, ready.features
    X = features[bundle.feature_names]
    progress(f"features built for {len(features):,} open deals; scoring and explaining")
    p, factors = explain(bundle, X, progress=progress, rep_reasons=settings.rep_reasons)
    bad, rules, reasons = _unscorable(ready.unknown_stage, p)
    frame = _score_rows(loaded, features, X, (p, factors), ready.amount, settings, scored_at)
    del factors  # the frame holds them now
    if previous is not None:
        frame = carry_previous(frame, previous, settings.steady)
        moved = frame["trend"].isin([Trend.IMPROVING, Trend.DECLINING]).to_numpy()
        frame["change_reason"] = np.where(moved, ready.change_reason, NONE)
    frame = frame[list(Scores.to_schema().columns)]
    rejected = rejects(frame[bad], rules[bad].astype(str), reasons[bad].astype(str))
    return frame[~bad].reset_index(drop=True), rejected.reset_index(drop=True), features


def _features(tables: CrmTables, loaded: LoadedModel, as_of: pd.Timestamp) -> pd.DataFrame:
    """The features of the deals open at as_of: ModelMismatchError if the model needs more."""
    bundle = loaded.bundle
    features = build_features(tables, as_of, bundle.feature_state)
    require_features(
        f"model {loaded.name} v{loaded.version}", bundle.feature_names, features.columns
    )
    return features


def _unknown_stage(tables: CrmTables, bundle: ModelBundle, features: pd.DataFrame) -> np.ndarray:
    """Per feature row, why its stage cannot be scored (a stage the model never saw), else ""."""
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
        reasons[at] = [f"stage {s!r} is unknown to the model; retrain" for s in stage[unknown]]
    return reasons


def _unscorable(
    unknown_stage: np.ndarray, p: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(which feature rows cannot be scored, the rule and the reason of each): a stage the model
    never saw, or no finite probability."""
    bad = unknown_stage != ""
    rules = np.where(bad, "unknown_stage", "").astype(object)
    reasons = unknown_stage.copy()
    broken = ~np.isfinite(p) & ~bad
    bad |= broken
    rules[broken] = "no_probability"
    reasons[broken] = "the model gave no finite probability"
    return bad, rules, reasons


def _score_rows(
    loaded: LoadedModel,
    features: pd.DataFrame,
    X: pd.DataFrame,
    explained: tuple[np.ndarray, dict[str, np.ndarray]],
    amount: np.ndarray,
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
