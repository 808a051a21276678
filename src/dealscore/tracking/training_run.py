"""Job step: log a training run to MLflow, log the pyfunc model, register it and set aliases."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.code_dataset_source import CodeDatasetSource

from dealscore import __version__
from dealscore.features import CATALOGUE, FEATURE_NAMES, build_features
from dealscore.io.secrets import redact
from dealscore.model.metrics import chance_ece, evaluate, lift_by_decile, reliability_table
from dealscore.model.reasons import tree_arrays
from dealscore.pipeline.training import Tracking, TrainResult, TrainSettings
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables
from dealscore.schemas.tables import coverage_change
from dealscore.tracking import plots
from dealscore.tracking.card import model_card
from dealscore.tracking.pyfunc import (
    BUNDLE_ARTIFACT,
    ENTRY_SCRIPT,
    PACKAGE_DIR,
    ModelBundle,
    load_bundle,
    pip_requirements,
    save_bundle,
    signature,
)
from dealscore.tracking.registry import (
    Decision,
    current_champion,
    decide,
    model_name,
    refuse,
    set_aliases,
)
from dealscore.tracking.store import tracking_uri, use_store


def git_commit() -> str | None:
    """The commit of the dealscore source, when it runs from a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _metrics(comparison: pd.DataFrame) -> dict[str, float]:
    names = ["roc_auc", "pr_auc", "log_loss", "brier", "ece"]
    out = {
        f"{row.contender}.{row.segment}.{name}": float(getattr(row, name))
        for row in comparison.itertuples()
        for name in names
        if np.isfinite(getattr(row, name))
    }
    model = comparison[(comparison["contender"] == "model") & (comparison["segment"] == "all")]
    out.update({name: float(model[name].iloc[0]) for name in names})  # headline: sortable in the UI
    return out


def _heroics_text(result: TrainResult) -> str:
    h = result.heroics
    text = f"{h.flagged:,} of {h.won:,} won deals flagged by the rule"
    if h.true_heroic is not None:
        text += f" ({h.true_flagged:,} truly heroic of {h.true_heroic:,} in the truth file)"
    if h.weighted is not None and h.unweighted is not None:
        text += f"; down-weighted to {h.weight}, on all test rows with vs without: " + ", ".join(
            f"{name} {h.weighted[name]:.4f} vs {h.unweighted[name]:.4f}"
            for name in ("roc_auc", "log_loss", "brier")
        )
    else:
        text += "; not down-weighted (heroic_weight = 1)"
    return text


def _limits(result: TrainResult) -> list[str]:
    limits = [
        (
            "Probabilities are calibrated on the calibration slice; if the win rate drifts after "
            "it (see the test slice's positive_rate), calibration drifts with it. Retrain often."
        ),
        (
            "Snapshots are sampled from resolved deals; very long open deals are rarer in "
            "training than in the open pipeline (docs/features.md, length bias)."
            if result.scheme != "grid"
            else "Training rows are the deals open on a weekly grid of dates whose label window "
            "had ended by the export: the last horizon before the export is not trained on."
        ),
        (
            "Win within the quarter is a second model (in_quarter), used by `dealscore compare`."
            if result.in_quarter is not None
            else "Win within the quarter is not modelled: `dealscore compare` falls back to slips."
        ),
    ]
    if "rep_forecast" not in result.predictions:
        limits.append("No rep forecasts in this export: the model was not compared with the reps.")
    if "oracle_ceiling" in result.predictions:
        limits.append(
            "Generated data: oracle_ceiling is P(won within H | the deal's hidden state at as_of), "
            "which no model can beat on average; oracle_creation reads the state on the deal's "
            "first day (docs/synthetic.md)."
        )
    return limits


def _artifacts(result: TrainResult, settings: TrainSettings, source: str, folder: Path) -> None:
    """Tables, plots, the catalogue and the model card, written into `folder`."""
    test, predictions = result.test, result.predictions
    y = test["label"].to_numpy()
    same = np.all([np.isfinite(p) for p in predictions.values()], axis=0)
    on_same = {name: p[same] for name, p in predictions.items()}
    (folder / "plots").mkdir()
    plots.save(plots.reliability_figure(y[same], on_same), folder / "plots/reliability.png")
    plots.save(plots.roc_figure(y[same], on_same), folder / "plots/roc.png")
    plots.save(plots.lift_figure(y, predictions["model"]), folder / "plots/lift.png")
    booster = result.model.booster_.booster_
    importance = pd.Series(
        booster.feature_importance("gain", iteration=result.model.best_iteration_),
        index=booster.feature_name(),
    )
    plots.save(plots.importance_figure(importance), folder / "plots/feature_importance.png")
    tables = folder / "tables"
    tables.mkdir()
    result.comparison.to_csv(tables / "comparison.csv", index=False)
    if result.outcome_metrics is not None:
        result.outcome_metrics.to_csv(tables / "outcomes.csv", index=False)
    if result.forward is not None:
        result.forward.table.to_csv(tables / "forward_test.csv", index=False)
        result.forward.reliability().to_csv(tables / "forward_reliability.csv", index=False)
    result.outcomes.to_csv(tables / "by_outcome.csv", index=False)
    reliability_table(y, predictions["model"]).to_csv(tables / "reliability.csv", index=False)
    lift_by_decile(y, predictions["model"]).to_csv(tables / "lift.csv", index=False)
    importance.sort_values(ascending=False).rename("gain").to_csv(tables / "importance.csv")
    pd.DataFrame([asdict(f) for f in CATALOGUE]).to_csv(
        folder / "feature_catalogue.csv", index=False
    )
    (folder / "settings.json").write_text(json.dumps(asdict(settings), indent=2))
    (folder / "model_card.md").write_text(
        model_card(
            source=source,
            window=result.window,
            slice_rows=result.slice_rows,
            comparison=result.comparison,
            calibration=result.model.calibration_,
            best_iteration=result.model.best_iteration_,
            horizon_days=result.horizon_days,
            forward=result.forward.table if result.forward is not None else None,
            heroics=_heroics_text(result),
            limits=_limits(result),
            rep_inputs=settings.rep_inputs,
            outcomes=result.outcome_metrics,
        )
    )


def _champion_score(
    client: mlflow.MlflowClient,
    name: str,
    settings: TrainSettings,
    tables: CrmTables,
    coverage: tuple[str, ...],
    result: TrainResult,
) -> tuple[str | None, float | None, str]:
    """The champion's score on this run's test rows, with its own fitted feature state, or why
    it may not be compared: another CRM's model (other columns filled), or one that fails."""
    champion = current_champion(client, name)
    if champion is None:
        return None, None, ""
    try:
        bundle = load_bundle(mlflow.pyfunc.load_model(f"models:/{name}/{champion.version}"))
    except Exception as exc:
        return champion.version, None, f"champion v{champion.version} could not be loaded: {exc}"
    change = coverage_change(bundle.coverage, coverage)
    if change and not settings.allow_coverage_change:
        why = (
            f"{change.replace('the model', f'champion v{champion.version}', 1)}: another CRM's "
            "export? Give it its own registered_model, or set allow_coverage_change "
            "(--allow-coverage-change) if this CRM's export really changed"
        )
        return champion.version, None, why
    try:
        keys = result.test[["opportunity_id", "as_of"]]
        rows = keys.merge(
            build_features(tables, keys, bundle.feature_state), on=["opportunity_id", "as_of"]
        )
        p = bundle.predict(rows)
    except Exception as exc:
        return champion.version, None, f"champion v{champion.version} could not score: {exc}"
    score = evaluate(result.test["label"].to_numpy(), p)[settings.promotion_metric]
    return champion.version, score, ""


def _experiment(settings: TrainSettings) -> tuple[str, str | None]:
    """(tracking URI, experiment id); under `mlflow run` the run and experiment already exist."""
    uri = tracking_uri(settings.tracking_uri)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_tracking_uri(uri)
        return uri, os.environ.get("MLFLOW_EXPERIMENT_ID")
    return uri, use_store(uri, settings.experiment)


def check_store(settings: TrainSettings) -> None:
    """Fail fast (TrackingError) when the tracking store cannot be used."""
    _experiment(settings)


def track_training(
    result: TrainResult,
    tables: CrmTables,
    settings: TrainSettings,
    source: str,
    mapping: str | Path | None = None,
    progress: Progress = silent,
) -> Tracking:
    """One MLflow run: parameters, metrics, plots, model card, input fingerprint, the model."""
    uri, experiment_id = _experiment(settings)
    client = mlflow.MlflowClient()
    source = redact(source)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        progress(f"MLflow run {run.info.run_id} in {uri}")
        mlflow.set_tags(
            {
                "dealscore.version": __version__,
                "dealscore.data": source,
                **({"mlflow.source.git.commit": commit} if (commit := git_commit()) else {}),
            }
        )
        mlflow.log_params(
            {
                **asdict(settings),
                # Not "data" / "mapping": `mlflow run` logs its entry-point parameters under those.
                "data_source": source,
                "data_mapping": str(mapping or ""),
                "calibration_chosen": result.model.calibration_,
                "best_iteration": result.model.best_iteration_,
                **{f"rows_{name}": rows for name, rows in result.slice_rows.items()},
                **{name: str(value) for name, value in result.window.items()},
                "label_horizon_days": result.horizon_days or "",
            }
        )
        mlflow.log_metrics(_metrics(result.comparison))
        mlflow.log_metrics({f"in_quarter.{k}": v for k, v in result.in_quarter_metrics.items()})
        if result.outcome_metrics is not None:
            mlflow.log_metrics(
                {
                    f"outcomes.{row.contender}.{row.outcome.split(' ')[0]}.{metric}": float(value)
                    for row in result.outcome_metrics.itertuples()
                    for metric in ("ece", "roc_auc", "brier")
                    if np.isfinite(value := getattr(row, metric))
                }
            )
        if result.forward is not None:
            mlflow.log_metrics(
                {
                    f"forward.{row.contender}.{metric}": float(getattr(row, metric))
                    for row in result.forward.table[
                        result.forward.table["date"] == "pooled"
                    ].itertuples()
                    for metric in (
                        "roc_auc",
                        "brier",
                        "log_loss",
                        "ece",
                        "mean_predicted",
                        "actual",
                    )
                }
            )
        mlflow.log_metrics(
            {"heroic_flagged": result.heroics.flagged}
            | {f"heroics.weighted.{k}": v for k, v in (result.heroics.weighted or {}).items()}
            | {f"heroics.unweighted.{k}": v for k, v in (result.heroics.unweighted or {}).items()}
        )
        mlflow.log_input(
            mlflow.data.from_pandas(  # type: ignore[attr-defined]  # lazily exported
                tables.opportunities,
                # An explicit source: a plain string is ambiguous to MLflow (and may be a URL).
                source=CodeDatasetSource({"crm_export": source, "mapping": str(mapping or "")}),
                name=f"crm:{Path(source).name or source}",
                digest=tables.fingerprint(),
            ),
            context="training",
        )
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            _artifacts(result, settings, source, folder)
            mlflow.log_artifacts(str(folder))
            progress("logging the model")
            coverage = tables.coverage()  # kept in the model, and compared with the champion's
            bundle = ModelBundle(
                estimator=result.model,
                feature_state=result.feature_state,
                feature_names=list(FEATURE_NAMES),
                metadata={"run_id": run.info.run_id, "dealscore_version": __version__},
                reference=result.reference,
                trees=tree_arrays(result.model.booster_.booster_, result.model.best_iteration_),
                in_quarter=result.in_quarter,
                horizon_days=result.horizon_days,
                forward=result.forward.table if result.forward is not None else None,
                won_profile=result.won_profile,
                no_decision=result.no_decision,
                coverage=coverage,
            )
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(ENTRY_SCRIPT),
                artifacts={BUNDLE_ARTIFACT: str(save_bundle(bundle, folder))},
                code_paths=[str(PACKAGE_DIR)],
                signature=signature(list(FEATURE_NAMES)),
                input_example=result.test[FEATURE_NAMES].head(3),
                pip_requirements=pip_requirements(),
            )
        name = settings.registered_model or model_name(source)
        version, decision = _register_and_gate(
            client, info.model_uri, name, result, tables, coverage, settings, source
        )
        return Tracking(
            run.info.run_id,
            run.info.experiment_id,
            uri,
            info.model_uri,
            version,
            decision.promote,
            decision.reason,
            name,
        )


def _gate(result: TrainResult, settings: TrainSettings) -> tuple[dict[str, float], str]:
    """(the test-slice metrics, why the challenger may never be champion: "" when it may)."""
    measured = evaluate(result.test["label"].to_numpy(), result.predictions["model"])
    if result.forward is not None:
        ece, where = result.forward.pooled()["ece"], "the forward test"
        chance = chance_ece(result.forward.rows["model"].to_numpy())
    else:
        ece, where = measured["ece"], "the test slice (no forward test ran)"
        chance = chance_ece(result.predictions["model"])
    mlflow.log_metric("gate.chance_ece", chance)
    return measured, refuse(measured, ece, settings.max_forward_ece, where, chance)


def _register_and_gate(
    client: mlflow.MlflowClient,
    model_uri: str,
    name: str,
    result: TrainResult,
    tables: CrmTables,
    coverage: tuple[str, ...],
    settings: TrainSettings,
    source: str,
) -> tuple[str, Decision]:
    """Register a new version under the CRM's name, decide champion or challenger, set the
    aliases and record why, in the active run."""
    # MLflow prints "Successfully registered" itself; the CLI says it once, after the gate.
    with contextlib.redirect_stderr(io.StringIO()):
        version = str(mlflow.register_model(model_uri, name).version)
    client.set_model_version_tag(name, version, "dealscore.data", source)
    measured, refusal = _gate(result, settings)
    champion_version, champion_score, problem = _champion_score(
        client, name, settings, tables, coverage, result
    )
    decision = decide(
        settings.promotion_metric,
        measured[settings.promotion_metric],
        champion_score,
        settings.promotion_tolerance,
        champion_version or "",
    )
    if problem:
        decision = Decision(False, f"not promoted: {problem}")
    if refusal:
        decision = Decision(False, f"not promoted: {refusal}")
    set_aliases(client, name, version, decision)
    mlflow.set_tags(
        {
            "dealscore.model_version": version,
            "dealscore.promoted": str(decision.promote).lower(),
            "dealscore.promotion_reason": decision.reason,
        }
    )
    if champion_score is not None:
        mlflow.log_metric(f"champion.{settings.promotion_metric}", champion_score)
    return version, decision
