"""What a training run writes beside the model: plots, tables, the feature catalogue, the
settings and the model card, with the card's sentences about this run."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from dealscore.features import CATALOGUE, FEATURE_NAMES
from dealscore.model.metrics import lift_by_decile, reliability_table
from dealscore.pipeline.training import TrainResult, TrainSettings
from dealscore.tracking import plots
from dealscore.tracking.card import model_card


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


def write_artifacts(
    result: TrainResult, settings: TrainSettings, source: str, folder: Path
) -> None:
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
