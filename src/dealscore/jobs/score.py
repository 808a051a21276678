"""Job: score every deal open at as_of with the champion model, explain it, write it back.

Same feature code as training (`build_features` with the model's fitted feature state), reasons
from the model's precomputed path credits, one transaction per destination. Nothing is written
when more than `max_rejected_share` of the open deals cannot be scored.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
import pandas as pd
import pandera.errors
import pydantic.dataclasses
from pydantic import Field

from dealscore.errors import DealscoreError, InputError
from dealscore.features import build_features
from dealscore.features.asof import export_time, last_event, stale_as_of
from dealscore.features.build import snapshots_at
from dealscore.features.deal import CALENDAR_FEATURES, current_stage
from dealscore.features.forecast import REP_INPUTS
from dealscore.features.sentences import sentences
from dealscore.io import read_export
from dealscore.io.scores import Run, ScoreStore, open_store
from dealscore.io.secrets import redact
from dealscore.model.drift import population_stability, shift_since_previous
from dealscore.model.outcomes import three_outcomes
from dealscore.model.reasons import path_contributions, top_factors, tree_arrays
from dealscore.model.scoring import DEFAULT_BANDS, bands, trends
from dealscore.progress import Laps, Progress, silent
from dealscore.schemas import Opportunities
from dealscore.schemas.contract import quarantine
from dealscore.schemas.scores import FACTOR_COLUMNS, FACTORS, Rejected, Scores, factor_columns
from dealscore.schemas.tables import TIMESTAMP_DTYPE, coverage_change
from dealscore.settings import SETTINGS

if TYPE_CHECKING:  # MLflow loads only when a model does
    from dealscore.tracking.pyfunc import ModelBundle


NONE = np.array(None, dtype=object)  # a fill value NumPy's type stubs accept
Probability = Annotated[float, Field(ge=0, le=1)]
ENGINES = ("pandas", "spark")


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


class ModelNotFoundError(DealscoreError, LookupError):
    """The model URI names no model the tracking store has."""


class ModelMismatchError(InputError):
    """The model expects features this version of dealscore does not build."""


class TooManyRejectedError(DealscoreError, RuntimeError):
    """More open deals could not be scored than the settings allow; nothing was written."""

    exit_code = 1  # the export is at fault


@dataclass(frozen=True)
class LoadedModel:
    bundle: ModelBundle
    name: str
    version: str
    run_id: str
    alias: str = ""  # the alias it was loaded by (champion), if any

    def describe(self) -> str:
        """'model dealscore-demo-crm v3 (champion)'."""
        return f"model {self.name} v{self.version}" + (f" ({self.alias})" if self.alias else "")


@dataclass(frozen=True)
class ScoreResult:
    scores: pd.DataFrame
    rejected: pd.DataFrame
    open_deals: int
    destination: str
    model: LoadedModel
    as_of: pd.Timestamp
    drift: pd.Series  # PSI per feature and for the score
    seconds: dict[str, float] = field(default_factory=dict)

    @functools.cached_property  # read by the CLI and the MLflow run: computed once
    def shift_since_previous(self) -> float | None:
        """PSI of the scores against the previous run's, on the deals scored both times."""
        return shift_since_previous(
            self.scores["win_probability"].to_numpy(dtype=float),
            self.scores["previous_probability"].to_numpy(dtype=float),
        )


def _require_store(model: str, store: str) -> None:
    """A registry or run model from a local store that does not exist: say so, before MLflow
    creates the store empty on the way to failing."""
    from dealscore.tracking.store import missing_local_store

    if model.startswith(("models:/", "runs:/")) and (missing := missing_local_store(store)):
        raise ModelNotFoundError(
            f"no model {model}: there is no MLflow store at {missing} yet (train one with "
            "`dealscore train`, or pass --tracking-uri)"
        )


def _why_no_alias(client, name: str, alias: str) -> str:
    """When the model exists but not the alias: which versions there are and why the latest
    was not promoted, with the URI that uses it anyway."""
    if not alias:
        return ""
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except Exception:
        return ""
    if not versions:
        return ""
    latest = max(versions, key=lambda v: int(v.version))
    why = latest.tags.get("promotion", "")
    return (
        f"({name} has {len(versions)} version(s); the latest, v{latest.version}, "
        f"{'was ' + why if why.startswith('not promoted') else 'is not ' + alias}. To use it "
        f"anyway: --model models:/{name}/{latest.version})"
    )


def load_model(uri: str, tracking_uri: str = "") -> LoadedModel:
    """The dealscore model behind a `models:/name@alias`, `models:/name/version` or run URI."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from dealscore.tracking.pyfunc import load_bundle
    from dealscore.tracking.store import tracking_uri as resolve

    store = resolve(tracking_uri)
    _require_store(uri, store)
    mlflow.set_tracking_uri(store)
    client = mlflow.MlflowClient()
    name, version, run_id, alias = "dealscore", "", "", ""
    try:
        if uri.startswith("models:/"):
            ref = uri.removeprefix("models:/")
            found = None
            if "@" in ref:
                name, alias = ref.split("@", 1)
                found = client.get_model_version_by_alias(name, alias)
            elif "/" in ref:
                name, _, number = ref.partition("/")
                found = client.get_model_version(name, number)
            # else an MLflow 3 logged model (models:/m-...), loaded as it is, outside the registry
            if found is not None:
                version, run_id = str(found.version), found.run_id or ""
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        first = exc.message.splitlines()[0]
        if "Max retries exceeded" in first or "Connection" in first:
            raise ModelNotFoundError(f"cannot reach the tracking store {store}: {first}") from exc
        raise ModelNotFoundError(
            f"no model {uri} in {store}: {first} "
            + (
                _why_no_alias(client, name, alias)
                or "(train one with `dealscore train`, or pass --model)"
            )
        ) from exc
    except ImportError as exc:  # an artifact store whose client is not installed (s3://: boto3)
        raise ModelNotFoundError(
            f"cannot load model {uri}: {exc} (install the client of that artifact store, e.g. "
            "pip install boto3 for s3://)"
        ) from exc
    except OSError as exc:
        raise ModelNotFoundError(f"cannot load model {uri}: {exc}") from exc
    except Exception as exc:  # a model MLflow cannot load at all: say which and why
        raise ModelNotFoundError(
            f"cannot load model {uri}: {exc.__class__.__name__}: {exc}"
        ) from exc
    try:
        bundle = load_bundle(model)
    except (TypeError, AttributeError) as exc:
        raise ModelNotFoundError(
            f"{uri} is not a dealscore model (a pyfunc without dealscore's bundle): {exc}"
        ) from exc
    run_id = run_id or bundle.metadata.get("run_id", "")
    return LoadedModel(bundle, name, version or f"run-{run_id[:8]}", run_id, alias)


def _factor_frame(
    credits: np.ndarray, values: np.ndarray, names: np.ndarray, bundle: ModelBundle, rep: bool
) -> dict[str, np.ndarray]:
    if not rep:  # the rep's inputs still count in the score, just not as its reasons
        credits = np.where(np.isin(names, list(REP_INPUTS)), 0.0, credits)
    up, down = top_factors(credits, FACTORS)
    stage = names.tolist().index("stage_rank") if "stage_rank" in names else None
    stage_rank = values[:, stage] if stage is not None else None
    stage_names = {rank: name for name, rank in bundle.feature_state.stage_order.items()}
    rows = np.arange(len(credits))
    out: dict[str, np.ndarray] = {}
    slots = [
        (d, picks[:, r], r) for d, picks in (("up", up), ("down", down)) for r in range(FACTORS)
    ]
    for direction, pick, rank in slots:
        has = pick >= 0
        safe = np.where(has, pick, 0)
        f_col, c_col, _ = factor_columns(direction, rank + 1)
        out[f_col] = np.where(has, names[safe].astype(object), NONE)
        out[c_col] = np.where(has, credits[rows, safe], np.nan)
    # One call for all six factors: the per-template work is done once, not once per factor.
    picked = np.concatenate(
        [np.where(p >= 0, values[rows, np.maximum(p, 0)], np.nan) for _, p, _ in slots]
    )
    reasons = sentences(
        np.concatenate([out[factor_columns(d, r + 1)[0]] for d, _, r in slots]),
        picked,
        None if stage_rank is None else np.tile(stage_rank, len(slots)),
        stage_names,
        bundle.won_profile,
    )
    for k, (direction, _, rank) in enumerate(slots):
        out[factor_columns(direction, rank + 1)[2]] = reasons[k * len(rows) : (k + 1) * len(rows)]
    return out


def explain(
    bundle: ModelBundle,
    X: pd.DataFrame,
    chunk: int = 100_000,
    progress: Progress = silent,
    rep_reasons: bool = False,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Calibrated probabilities and the factor columns, a chunk of rows at a time (bounded
    memory for a million deals); the rep's own forecast is a reason only with rep_reasons."""
    estimator = bundle.estimator
    trees = bundle.trees or tree_arrays(estimator.booster_.booster_, estimator.best_iteration_)
    names = np.asarray(bundle.feature_names)
    if X.empty:
        return np.empty(0), {name: np.empty(0, dtype=object) for name in FACTOR_COLUMNS}
    probabilities, parts = [], []
    for start in range(0, max(len(X), 1), chunk):
        part = X.iloc[start : start + chunk]
        credits = path_contributions(trees, part.to_numpy(dtype=float))
        probabilities.append(estimator.calibrate(trees.base + credits.sum(axis=1)))
        parts.append(_factor_frame(credits, part.to_numpy(dtype=float), names, bundle, rep_reasons))
        if len(X) > chunk:
            done = min(start + chunk, len(X))
            progress(f"scored and explained {done:,} of {len(X):,} deals ({done / len(X):.0%})")
    factors = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    return np.concatenate(probabilities), factors


def score_deals(
    tables,
    loaded: LoadedModel,
    as_of: pd.Timestamp,
    settings: ScoreSettings,
    progress: Progress = silent,
    scored_at: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(scores, rejected, features) for every deal open at as_of; previous scores not yet set."""
    bundle = loaded.bundle
    features = build_features(tables, as_of, bundle.feature_state)
    if scored_at is None:
        scored_at = pd.Timestamp.now(tz="UTC").floor("s")
    missing = [name for name in bundle.feature_names if name not in features.columns]
    if missing:
        raise ModelMismatchError(
            f"model {loaded.name} v{loaded.version} needs {len(missing)} feature(s) this "
            f"dealscore does not build, e.g. {missing[:5]}: retrain it with this version"
        )
    X = features[bundle.feature_names]
    progress(f"features built for {len(features):,} open deals; scoring and explaining")
    p, factors = explain(bundle, X, progress=progress, rep_reasons=settings.rep_reasons)

    q = (
        bundle.no_decision.predict_proba(X)[:, 1]
        if bundle.no_decision is not None  # None: trained without it, or saved before it
        else np.full(len(X), np.nan)
    )
    outcomes = three_outcomes(p, q)
    deals = tables.opportunities.set_index(Opportunities.opportunity_id)
    amount = (
        features["opportunity_id"].map(deals[Opportunities.amount]).to_numpy(dtype=float)
        if Opportunities.amount in deals
        else np.full(len(features), np.nan)
    )
    bad = np.zeros(len(features), dtype=bool)
    rules = np.full(len(features), "", dtype=object)
    reasons = np.full(len(features), "", dtype=object)
    known = set(bundle.feature_state.stage_order)
    if known:
        stage = current_stage(tables, snapshots_at(tables, features[["opportunity_id", "as_of"]]))
        unknown = pd.notna(stage) & ~pd.Series(stage).isin(known).to_numpy()
        bad |= unknown
        rules[unknown] = "unknown_stage"
        reasons[unknown] = [f"stage {s!r} is unknown to the model; retrain" for s in stage[unknown]]
    broken = ~np.isfinite(p) & ~bad
    bad |= broken
    rules[broken] = "no_probability"
    reasons[broken] = "the model gave no finite probability"
    frame = pd.DataFrame(
        {
            "opportunity_id": features["opportunity_id"].to_numpy(),
            "as_of": features["as_of"].to_numpy(),
            "scored_at": scored_at,
            "model_name": loaded.name,
            "model_version": loaded.version,
            "run_id": loaded.run_id,
            "win_probability": p,
            "lost_probability": outcomes[:, 1],
            "no_decision_probability": outcomes[:, 2],
            "band": bands(np.nan_to_num(p), (settings.band_a, settings.band_b, settings.band_c)),
            "expected_amount": amount * p,
            "previous_probability": np.nan,
            "previous_as_of": pd.Series(pd.NaT, index=features.index, dtype=TIMESTAMP_DTYPE),
            "trend": "new",
            **factors,
        }
    )
    frame["as_of"] = frame["as_of"].astype(TIMESTAMP_DTYPE)
    frame["scored_at"] = frame["scored_at"].astype(TIMESTAMP_DTYPE)
    rejected = pd.DataFrame(
        {
            "opportunity_id": frame["opportunity_id"][bad],
            "as_of": frame["as_of"][bad],
            "model_name": loaded.name,
            "model_version": loaded.version,
            "scored_at": frame["scored_at"][bad],
            "rule": rules[bad].astype(str),
            "reason": reasons[bad].astype(str),
        }
    )
    return frame[~bad].reset_index(drop=True), rejected.reset_index(drop=True), features


def contract_rejects(
    held: pd.DataFrame, as_of: pd.Timestamp, loaded: LoadedModel, scored_at: pd.Series
) -> pd.DataFrame:
    """Reject rows for the quarantined deals that were open at as_of (created before it, not
    closed before it; a date that could not be read counts as open): rule `contract`."""
    created_ok = held["created_at"].isna() | (held["created_at"] < as_of)
    open_then = held["closed_at"].isna() | (held["closed_at"] >= as_of)
    deals = held[created_ok & open_then]
    when = scored_at.iloc[0] if len(scored_at) else pd.Timestamp.now(tz="UTC").floor("s")
    return pd.DataFrame(
        {
            "opportunity_id": deals["opportunity_id"].astype(str).to_numpy(),
            "as_of": pd.Series(as_of, index=range(len(deals)), dtype=TIMESTAMP_DTYPE),
            "model_name": loaded.name,
            "model_version": loaded.version,
            "scored_at": pd.Series(when, index=range(len(deals)), dtype=TIMESTAMP_DTYPE),
            "rule": "contract",
            "reason": deals["reason"].to_numpy(),
        }
    )


def _quarantine(scores: pd.DataFrame, rejected: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows the Scores schema refuses move to the rejected rows, with the failed check."""
    try:
        return Scores.validate(scores, lazy=True), rejected
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases.dropna(subset=["index"])
        if cases.empty:  # a frame-level failure is a bug, not bad data: stop
            raise
        why = cases.groupby("index").apply(
            lambda c: "; ".join(
                f"{col} fails {chk}" for col, chk in zip(c["column"], c["check"], strict=True)
            )
        )
        bad = scores.index.isin(why.index)
        moved = scores[bad]
        extra = pd.DataFrame(
            {
                "opportunity_id": moved["opportunity_id"],
                "as_of": moved["as_of"],
                "model_name": moved["model_name"],
                "model_version": moved["model_version"],
                "scored_at": moved["scored_at"],
                "rule": "score_schema",
                "reason": why.reindex(moved.index).to_numpy(),
            }
        )
        return Scores.validate(scores[~bad].reset_index(drop=True)), pd.concat(
            [rejected, extra], ignore_index=True
        )


def utc_as_of(as_of: pd.Timestamp | str) -> pd.Timestamp:
    """The scoring time in UTC (a naive time is taken as UTC)."""
    as_of = pd.Timestamp(as_of)
    return as_of.tz_convert("UTC") if as_of.tzinfo else as_of.tz_localize("UTC")


def drift_inputs(features: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """What drift is measured on: the features (calendar ones excluded) and the probability."""
    probability = scores.set_index("opportunity_id")["win_probability"]
    return features.drop(columns=list(CALENDAR_FEATURES)).assign(
        win_probability=features["opportunity_id"].map(probability)
    )


def settle(
    scores: pd.DataFrame,
    rejected: pd.DataFrame,
    open_deals: int,
    store: ScoreStore,
    run: Run,
    settings: ScoreSettings,
    progress: Progress = silent,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Previous scores and trends, the schema quarantine, reconciliation and the reject limit,
    then one write: the same for every engine. Returns what was written."""
    previous = store.previous(run)
    scores = scores.drop(columns=["previous_probability", "previous_as_of"]).merge(
        previous, on="opportunity_id", how="left"
    )
    scores["trend"] = trends(
        scores["win_probability"].to_numpy(),
        scores["previous_probability"].to_numpy(dtype=float),
        settings.steady,
        (scores["previous_model_version"] == scores["model_version"]).to_numpy(dtype=bool),
    )
    scores = scores[list(Scores.to_schema().columns)]
    scores, rejected = _quarantine(scores, rejected)
    rejected = Rejected.validate(rejected)
    if open_deals != len(scores) + len(rejected):  # a bug, never bad data: refuse to write
        raise RuntimeError(
            f"reconciliation failed: {open_deals:,} open deals, {len(scores):,} scored, "
            f"{len(rejected):,} rejected"
        )
    share = len(rejected) / max(open_deals, 1)
    if share > settings.max_rejected_share:
        raise TooManyRejectedError(
            f"{len(rejected):,} of {open_deals:,} open deals ({share:.1%}) could not be scored, "
            f"above max_rejected_share {settings.max_rejected_share:.0%}; nothing was written. "
            f"Reasons: {rejected['rule'].value_counts().to_dict()}"
        )
    progress(f"writing {len(scores):,} scores and {len(rejected):,} rejects to {store.describe()}")
    store.write(run, scores, rejected)
    return scores, rejected


def run_score(
    data: str | Path,
    settings: ScoreSettings,
    as_of: pd.Timestamp | None = None,
    mapping: str | Path | None = None,
    progress: Progress = silent,
) -> ScoreResult:
    """Load the model, read the export, score, check, write; returns what was written."""
    if not settings.model:
        from dealscore.tracking.registry import champion_uri

        settings = replace(settings, model=champion_uri(data))
    if settings.track and not os.environ.get("MLFLOW_RUN_ID"):
        from dealscore.tracking.store import tracking_uri, use_store

        _require_store(settings.model, tracking_uri(settings.tracking_uri))
        # The scoring run is logged last: an unusable store must fail now, not after the write.
        use_store(tracking_uri(settings.tracking_uri), settings.experiment)
    if settings.engine == "spark":
        from dealscore.jobs.spark import run_score_spark  # pyspark is an optional extra

        if mapping:
            raise InputError(
                "the Spark engine reads tables already in the data contract's shape; map the "
                "export first with `dealscore ingest --mapping ...`, then score that folder"
            )
        return run_score_spark(str(data), settings, as_of, progress)
    lap = Laps()
    progress(f"loading {settings.model}")
    loaded = load_model(settings.model, settings.tracking_uri)
    store = open_store(settings.out, settings.format)  # an unreachable database fails here
    lap("load model")
    progress(f"reading {redact(str(data))}")
    export = read_export(data, mapping)
    held = quarantine(export.tables)  # bad rows out, with their deals; table-level errors raise
    del export
    tables = held.tables
    if not held.deals.empty:
        progress(
            "quarantined "
            + ", ".join(f"{n:,} {name} rows" for name, n in held.dropped.items() if n)
            + f" ({len(held.deals):,} deals) that break the data contract; `validate` lists them"
        )
    lap("read")
    if change := coverage_change(loaded.bundle.coverage, tables.coverage()):
        progress(
            f"WARNING: {change} ({loaded.describe()}): is it the CRM the model was trained on?"
        )
    # No time given: the export's own, so a rerun on the same export is the same run.
    now = export_time(last_event(tables))
    as_of = utc_as_of(as_of if as_of is not None else now)
    if warning := stale_as_of(as_of, now):
        progress(f"WARNING: {warning}")
    horizon = getattr(loaded.bundle, "horizon_days", None)
    meaning = f": P(won within {horizon:g} days)" if horizon else ""
    progress(f"scoring deals open at {as_of:%Y-%m-%d %H:%M} UTC with {loaded.describe()}" + meaning)
    scores, rejected, features = score_deals(tables, loaded, as_of, settings, progress)
    held_open = contract_rejects(held.deals, as_of, loaded, scores["scored_at"])
    rejected = pd.concat([rejected, held_open], ignore_index=True)
    lap("features + score + reasons")
    run = Run(as_of, loaded.name, loaded.version)
    open_deals = len(features) + len(held_open)
    scores, rejected = settle(scores, rejected, open_deals, store, run, settings, progress)
    lap("validate + write")
    drift = population_stability(loaded.bundle.reference, drift_inputs(features, scores))
    result = ScoreResult(
        scores, rejected, open_deals, store.describe(), loaded, as_of, drift, lap.seconds
    )
    if settings.track:
        log_scoring(result, settings)
    return result


def log_scoring(result: ScoreResult, settings: ScoreSettings) -> None:
    """An MLflow run per scoring: where, with what, how many, and the drift."""
    import mlflow

    from dealscore.tracking.store import tracking_uri

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(tracking_uri(settings.tracking_uri))
    if not os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run`, log into its run
        mlflow.set_experiment(settings.experiment)
    with mlflow.start_run():
        # Prefixed: `mlflow run` logs its entry point's parameters (data, out, model) already.
        mlflow.log_params(
            {
                **{f"score.{k}": v for k, v in asdict(settings).items() if k != "tracking_uri"},
                "score.out": redact(settings.out),  # never a database password
                "score.model_version": result.model.version,
                "score.model_run_id": result.model.run_id,
                "score.as_of": str(result.as_of),
                "score.destination": result.destination,
            }
        )
        bands_share = result.scores["band"].value_counts(normalize=True)
        mlflow.log_metrics(
            {
                "open_deals": result.open_deals,
                "scored": len(result.scores),
                "rejected": len(result.rejected),
                "mean_probability": float(result.scores["win_probability"].mean()),
                "psi_max": float(result.drift.max()) if len(result.drift) else 0.0,
                **{f"band_{band}": float(bands_share.get(band, 0.0)) for band in "ABCD"},
                **{f"psi.{name}": float(v) for name, v in result.drift.items()},
                **(
                    {"psi_vs_previous_run": shift}
                    if (shift := result.shift_since_previous) is not None
                    else {}
                ),
            }
        )
