"""Job step: log a training run to MLflow, log the pyfunc model, register it and set aliases."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.code_dataset_source import CodeDatasetSource

from dealscore import __version__
from dealscore.features import CATALOGUE, FEATURE_NAMES, build_features
from dealscore.io.secrets import redact
from dealscore.model.metrics import chance_ece, evaluate, lift_by_decile, reliability_table
from dealscore.pipeline.training import Tracking, TrainResult, TrainSettings
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables
from dealscore.schemas.tables import coverage_change
from dealscore.tracking import plots
from dealscore.tracking.card import model_card
from dealscore.tracking.models import load_model
from dealscore.tracking.pyfunc import (
    BUNDLE_ARTIFACT,
    DIGEST_TAG,
    ENTRY_SCRIPT,
    PACKAGE_DIR,
    model_digest,
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
            "Probabilities are calibrated on out-of-fold scores over the whole labelled history, "
            "then moved by what the last horizon's early wins say (the recent correction); a "
            "change of the business after the export is not in them. Retrain often."
        ),
        (
            "Training rows are the deals open on a weekly grid of dates whose label window had "
            "ended by the export: the last horizon before the export is not trained on, only "
            "read for the recent correction."
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


def _model_text(result: TrainResult) -> str:
    """The rung that scores and why, its calibration and the recent correction, in words."""
    model = result.model
    rounds = f", {model.best_iteration_} boosting rounds" if model.best_iteration_ else ""
    shift = (
        f"; moved by {model.shift_:+.3f} in log-odds for the last horizon's early wins"
        if model.shift_
        else ""
    )
    return (
        f"the {model.rung} rung of the model ladder{rounds}, {model.calibration_} calibration "
        f"fitted on out-of-fold scores{shift}. Why this rung: {result.ladder.reason}"
    )


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
    # Mean absolute credit in log-odds on the test rows: the same measure for every rung.
    importance = pd.Series(
        np.abs(result.model.contributions(test[FEATURE_NAMES])).mean(axis=0),
        index=list(FEATURE_NAMES),
    )
    plots.save(plots.importance_figure(importance), folder / "plots/feature_importance.png")
    tables = folder / "tables"
    tables.mkdir()
    result.comparison.to_csv(tables / "comparison.csv", index=False)
    pd.DataFrame(
        {"rung": list(result.ladder.losses), "oof_log_loss": list(result.ladder.losses.values())}
    ).assign(chosen=lambda t: t["rung"] == result.ladder.chosen).to_csv(
        tables / "ladder.csv", index=False
    )
    if result.outcome_metrics is not None:
        result.outcome_metrics.to_csv(tables / "outcomes.csv", index=False)
    if result.forward is not None:
        result.forward.table.to_csv(tables / "forward_test.csv", index=False)
        result.forward.reliability().to_csv(tables / "forward_reliability.csv", index=False)
    result.outcomes.to_csv(tables / "by_outcome.csv", index=False)
    reliability_table(y, predictions["model"]).to_csv(tables / "reliability.csv", index=False)
    lift_by_decile(y, predictions["model"]).to_csv(tables / "lift.csv", index=False)
    importance.sort_values(ascending=False).rename("mean_abs_credit").to_csv(
        tables / "importance.csv"
    )
    pd.DataFrame([asdict(f) for f in CATALOGUE]).to_csv(
        folder / "feature_catalogue.csv", index=False
    )
    (folder / "settings.json").write_text(json.dumps(asdict(settings), indent=2))
    (folder / "model_card.md").write_text(
        model_card(
            source=source,
            window=result.window,
            fold_rows=result.fold_rows,
            comparison=result.comparison,
            model=_model_text(result),
            horizon_days=result.horizon_days,
            forward=result.forward.table if result.forward is not None else None,
            heroics=_heroics_text(result),
            limits=_limits(result),
            rep_inputs=settings.rep_inputs,
            outcomes=result.outcome_metrics,
        )
    )


MIN_COMPARED_ROWS = 200  # rows of the newest fold the champion never learned from


@dataclass(frozen=True)
class ChampionCheck:
    """The champion against the challenger, on the newest fold's rows the champion never
    learned from (it was refitted on every labelled row of its own export)."""

    version: str | None = None
    champion: float | None = None  # its promotion metric on those rows
    challenger: float | None = None  # the challenger's, out of fold, on the same rows
    rows: int = 0
    problem: str = ""  # why the challenger may not replace it: another CRM's, or it fails


def _champion_check(
    client: mlflow.MlflowClient,
    name: str,
    settings: TrainSettings,
    tables: CrmTables,
    coverage: tuple[str, ...],
    result: TrainResult,
) -> ChampionCheck:
    """The champion's score and the challenger's on the same rows, with the champion's own
    fitted feature state, or why it may not be compared: another CRM's model (other columns
    filled), or one that fails."""
    champion = current_champion(client, name)
    if champion is None:
        return ChampionCheck()
    version = champion.version
    try:  # checked against its digest like any registered model, before any of it runs
        bundle = load_model(f"models:/{name}/{version}", mlflow.get_tracking_uri()).bundle
    except Exception as exc:
        return ChampionCheck(version, problem=f"champion v{version} could not be loaded: {exc}")
    change = coverage_change(bundle.coverage, coverage)
    if change and not settings.allow_coverage_change:
        why = (
            f"{change.replace('the model', f'champion v{version}', 1)}: another CRM's "
            "export? Give it its own registered_model, or set allow_coverage_change "
            "(--allow-coverage-change) if this CRM's export really changed"
        )
        return ChampionCheck(version, problem=why)
    # Its labelled rows were those whose window ended by its cut-off: judge it on the others.
    test = result.test
    learned_until = bundle.feature_state.fitted_before
    unseen = np.ones(len(test), dtype=bool)
    if learned_until is not None:
        window = pd.Timedelta(days=bundle.horizon_days or 0.0)
        unseen = (test["as_of"] + window > learned_until).to_numpy()
    if unseen.sum() < MIN_COMPARED_ROWS:
        return ChampionCheck(version, rows=int(unseen.sum()))
    try:
        keys = test.loc[unseen, ["opportunity_id", "as_of"]]
        rows = keys.merge(
            build_features(tables, keys, bundle.feature_state), on=["opportunity_id", "as_of"]
        )
        p = bundle.predict(rows)
    except Exception as exc:
        return ChampionCheck(version, problem=f"champion v{version} could not score: {exc}")
    y = test.loc[unseen, "label"].to_numpy()
    metric = settings.promotion_metric
    return ChampionCheck(
        version,
        evaluate(y, p)[metric],
        evaluate(y, result.predictions["model"][unseen])[metric],
        int(unseen.sum()),
    )


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
                "rung": result.model.rung,
                "calibration_chosen": result.model.calibration_,
                "best_iteration": result.model.best_iteration_,
                "recent_shift": result.model.shift_,
                **{f"rows_{name}": rows for name, rows in result.fold_rows.items()},
                **{name: str(value) for name, value in result.window.items()},
                "label_horizon_days": result.horizon_days or "",
            }
        )
        mlflow.log_metrics(_metrics(result.comparison))
        mlflow.log_metrics(
            {f"ladder.{rung}.oof_log_loss": loss for rung, loss in result.ladder.losses.items()}
        )
        mlflow.set_tag("dealscore.rung", f"{result.ladder.chosen}: {result.ladder.reason}"[:5000])
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
            bundle = result.bundle(
                {
                    "run_id": run.info.run_id,
                    "dealscore_version": __version__,
                    "rung_reason": result.ladder.reason,
                },
                coverage,
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
            # The digest of the files as stored, kept in the tracking store: loading refuses
            # files that no longer match it (tracking.models).
            logged = mlflow.artifacts.download_artifacts(
                artifact_uri=info.model_uri, dst_path=str(folder / "logged")
            )
            digest = model_digest(Path(logged))
            mlflow.set_tag(DIGEST_TAG, digest)
        name = settings.registered_model or model_name(source)
        version, decision = _register_and_gate(
            client, info.model_uri, name, result, tables, coverage, settings, source, digest
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
    """(the newest fold's metrics, why the challenger may never be champion: "" when it may)."""
    measured = evaluate(result.test["label"].to_numpy(), result.predictions["model"])
    if result.forward is not None:
        ece, where = result.forward.pooled()["ece"], "the forward test"
        chance = chance_ece(result.forward.rows["model"].to_numpy())
    else:
        ece, where = measured["ece"], "the newest fold (no forward test ran)"
        chance = chance_ece(result.predictions["model"])
    mlflow.log_metric("gate.chance_ece", chance)
    refusals = [refuse(measured, ece, settings.max_forward_ece, where, chance)]
    if result.forward is not None:
        refusals.append(
            result.forward.worse_than_simpler(
                result.model.rung, settings.promotion_metric, settings.promotion_tolerance
            )
        )
    return measured, "; ".join(r for r in refusals if r)


def _register_and_gate(
    client: mlflow.MlflowClient,
    model_uri: str,
    name: str,
    result: TrainResult,
    tables: CrmTables,
    coverage: tuple[str, ...],
    settings: TrainSettings,
    source: str,
    digest: str,
) -> tuple[str, Decision]:
    """Register a new version under the CRM's name (with the digest of its files), decide
    champion or challenger, set the aliases and record why, in the active run."""
    # MLflow prints "Successfully registered" itself; the CLI says it once, after the gate.
    with contextlib.redirect_stderr(io.StringIO()):
        version = str(mlflow.register_model(model_uri, name, tags={DIGEST_TAG: digest}).version)
    client.set_model_version_tag(name, version, "dealscore.data", source)
    _, refusal = _gate(result, settings)
    check = _champion_check(client, name, settings, tables, coverage, result)
    if check.version and check.champion is None and not check.problem:
        decision = Decision(
            True,
            f"champion v{check.version} learned from the newest fold's rows (only {check.rows:,} "
            f"it never saw, fewer than {MIN_COMPARED_ROWS}), so the two cannot be compared "
            "fairly on them: promoted on the forward test's gates",
        )
    else:
        decision = decide(
            settings.promotion_metric,
            check.challenger if check.challenger is not None else float("nan"),
            check.champion,
            settings.promotion_tolerance,
            check.version or "",
            check.rows,
        )
    if check.problem:
        decision = Decision(False, f"not promoted: {check.problem}")
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
    if check.champion is not None and check.challenger is not None:
        mlflow.log_metrics(
            {
                f"champion.{settings.promotion_metric}": check.champion,
                f"challenger.{settings.promotion_metric}": check.challenger,
                "champion.compared_rows": check.rows,
            }
        )
    return version, decision
