"""The text summaries of data, training, scoring and monitoring: what a command prints when it
is not asked for --json (the quarter's forecasts: cli/render_forecast.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from dealscore.features import CATALOGUE, QUARTER_CATALOGUE
from dealscore.features.catalogue import Feature
from dealscore.flows.nightly import NightlyResult
from dealscore.io.secrets import redact
from dealscore.jobs.evaluate import EvaluateResult
from dealscore.jobs.features import FeaturesResult
from dealscore.jobs.ingest import ValidateResult
from dealscore.jobs.monitor import MonitorResult
from dealscore.jobs.score import ScoreResult
from dealscore.pipeline.forward import ForwardTest
from dealscore.pipeline.training import TrainResult
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID

ORACLE_NOTE = (
    "oracle_* rows (generated data only): the true win probability at the as-of date "
    "(ceiling: what no model can beat) and at the deal's creation"
)


def echo_validation(validation: ValidateResult, whole_report: bool = True) -> None:
    """The notes on reading the export, its summary, and the broken rules (without
    `whole_report`, only when some are warnings)."""
    for note in validation.notes:
        typer.echo(f"note: {note}")
    if validation.summary is not None:
        typer.echo(validation.summary.to_text())
    if whole_report or validation.report.warnings:
        typer.echo(validation.report.to_text())


def catalogue_lines() -> list[str]:
    """One line per feature: name, family, source tables and meaning; then how many, and those
    built for the won-this-quarter model alone."""
    width = max(len(f.name) for f in (*CATALOGUE, *QUARTER_CATALOGUE))

    def line(feature: Feature) -> str:
        sources = ",".join(feature.sources)
        return (
            f"{feature.name:<{width}}  {feature.family:<10}  {sources:<32}  {feature.description}"
        )

    return [
        *map(line, CATALOGUE),
        f"{len(CATALOGUE)} features",
        "",
        "Built beside them for the won-this-quarter model only (dealscore compare's forecast):",
        *map(line, QUARTER_CATALOGUE),
    ]


def echo_features(result: FeaturesResult, out: Path) -> None:
    """The frame's size and date, and the features no deal has a value for."""
    frame = result.frame
    missing = frame.drop(columns=[OPPORTUNITY_ID, AS_OF]).isna().mean()
    typer.echo(
        f"{len(frame):,} open deals x {frame.shape[1] - 2} features as of "
        f"{result.as_of:%Y-%m-%d %H:%M} UTC -> {out}"
    )
    empty = missing[missing == 1].index.tolist()
    if empty:
        typer.echo(f"missing for every deal (no source data): {', '.join(empty)}")


def echo_train(result: TrainResult, verbose: bool) -> None:
    """The contenders, the model the data picked, the forward test, and where MLflow keeps it."""
    echo_comparison(result.comparison, verbose)
    model = result.model
    rounds = f", {model.best_iteration_} boosting rounds" if model.best_iteration_ else ""
    typer.echo(
        f"model: {model.rung} (the rung the data picked){rounds}, calibration: "
        f"{model.calibration_}, recent correction: {model.shift_:+.3f} log-odds"
    )
    if result.horizon_days is not None:
        typer.echo(
            f"win_probability = P(won within {result.horizon_days:g} days of the as-of date)"
        )
    if result.outcome_metrics is not None and verbose:
        typer.echo("three outcomes on the test rows (flat split: the rest split by base rate)")
        typer.echo(
            result.outcome_metrics.set_index(["outcome", "contender"])[
                ["mean_predicted", "actual", "ece", "roc_auc", "brier"]
            ]
            .round(4)
            .to_string(na_rep="")
        )
    if result.forward is not None:
        echo_forward(result.forward, verbose)
    if result.tracking is not None:
        t = result.tracking
        typer.echo(redact(f"MLflow run {t.run_id} ({t.tracking_uri}); model {t.model_uri}"))
        if t.version:
            role = "champion" if t.promoted else "challenger"
            typer.echo(f"registered {t.registered_model} v{t.version} as {role}: {t.reason}")
        typer.echo(redact(f"browse: mlflow ui --backend-store-uri {t.tracking_uri}"))


def echo_comparison(comparison: pd.DataFrame, verbose: bool) -> None:
    """Every contender on the newest fold (out of fold); by age band too with --verbose."""
    metrics = ["roc_auc", "pr_auc", "log_loss", "brier", "ece"]
    whole = comparison[comparison["segment"] == "all"]
    if len(whole):
        first = whole.iloc[0]
        typer.echo(
            f"newest fold, out of fold: {int(first['rows']):,} snapshot rows, won within the "
            f"horizon {first['positive_rate']:.1%}"
        )
    if verbose:
        table = comparison.set_index(["segment", "contender"])[[*metrics, "rows"]]
        typer.echo(table.round(4).to_string(formatters={"rows": "{:,.0f}".format}))
    else:
        typer.echo(whole.set_index("contender")[metrics].round(4).to_string())
    if comparison["contender"].str.startswith("oracle_").any():
        typer.echo(ORACLE_NOTE)


def echo_forward(forward: ForwardTest, verbose: bool = True) -> None:
    """The forward test per date and contender (pooled only, unless verbose), then one line."""
    columns = ["roc_auc", "brier", "log_loss", "ece", "mean_predicted", "actual", "rows"]
    typer.echo("forward test: deals open at each date, model trained only on the export then")
    table = forward.table if verbose else forward.table[forward.table["date"] == "pooled"]
    typer.echo(
        table.set_index(["date", "contender"])[columns]
        .round(4)
        .to_string(formatters={"rows": "{:,.0f}".format})
    )
    typer.echo(forward.summary())


def echo_evaluate(result: EvaluateResult) -> None:
    """The forward test, the model's pooled reliability, and where the scored deals went."""
    forward = result.forward
    echo_forward(forward)
    typer.echo("reliability (model, pooled):")
    typer.echo(forward.reliability().round(4).to_string(index=False))
    if result.out is not None:
        typer.echo(f"wrote {len(forward.rows):,} scored deals to {result.out}")


def echo_scores(result: ScoreResult, psi_warning: float) -> None:
    """The reconciliation, the bands, the trends, the rejects, drift, and where it went."""
    typer.echo(
        f"open deals {result.open_deals:,} = scored {len(result.scores):,} "
        f"+ rejected {len(result.rejected):,}"
    )
    for band in result.by_band().itertuples():
        typer.echo(
            f"  band {band.Index}: {band.deals:>8,} deals, expected {band.expected_amount:>14,.0f}"
        )
    trend = result.scores["trend"].value_counts()
    typer.echo("trend: " + ", ".join(f"{name} {count:,}" for name, count in trend.items()))
    if len(result.rejected):
        typer.echo(
            "rejected: "
            + ", ".join(f"{k} {v:,}" for k, v in result.rejected["rule"].value_counts().items())
        )
    for warning in result.drift_warnings:
        typer.secho(f"drift warning: {warning}", fg=typer.colors.YELLOW)
    shift = result.shift_since_previous
    if shift is not None and shift > psi_warning:
        typer.secho(
            f"drift warning: the scores moved against the previous run (PSI {shift:.2f} over the "
            "deals scored both times): a new model, or a change in the export",
            fg=typer.colors.YELLOW,
        )
    typer.echo(
        f"{result.model.describe()}; as of {result.as_of:%Y-%m-%d %H:%M} UTC; "
        f"written to {redact(result.destination)}"
    )


def monitor_table(table: pd.DataFrame) -> str:
    """Rows, pending, and predicted against won with ECE, Brier and ROC AUC; the reps' beside."""
    shown = table[
        ["group", "rows", "pending", "mean_predicted", "won", "ece", "brier", "roc_auc"]
        + [c for c in ("rep_mean_predicted", "rep_ece") if c in table]
    ].rename(
        columns={"mean_predicted": "predicted", "rep_mean_predicted": "reps", "rep_ece": "reps ece"}
    )
    counts = {c: "{:,.0f}".format for c in ("rows", "pending")}
    rates = {c: "{:.3f}".format for c in shown if c not in ("group", "rows", "pending")}
    return shown.to_string(index=False, formatters={**counts, **rates}, na_rep="-")


def echo_monitor(result: MonitorResult, nights: int) -> None:
    """The scores written by how they stand, then each breakdown and the last elapsed nights."""
    counts = result.counts
    typer.echo(
        f"{result.model_name}: {sum(counts.values()):,} scores written; {counts['elapsed']:,} "
        f"elapsed (their window ended by {result.now:%Y-%m-%d}), {counts['pending']:,} pending, "
        f"{counts['gone']:,} of deals no longer in the export"
    )
    if counts["gone"]:
        typer.echo("  gone: " + ", ".join(result.gone()))
    table = result.table
    for by, title in (
        ("pooled", "pooled"),
        ("model_version", "by model version"),
        ("band", "by band"),
        ("month", "by month scored"),
    ):
        part = table[table["by"] == by]
        if len(part):
            typer.echo(f"\n{title}:\n{monitor_table(part)}")
    elapsed = table[(table["by"] == "as_of") & (table["rows"] > 0)]
    if len(elapsed):
        typer.echo(f"\nthe last {min(nights, len(elapsed))} elapsed nights:")
        typer.echo(monitor_table(elapsed.tail(nights)))


def echo_nightly(result: NightlyResult, psi_warning: float) -> None:
    """The night's scores, how the scores written so far did, and what became of the champion."""
    echo_scores(result.score, psi_warning)
    counts = result.monitor.counts
    pooled = result.monitor.table.iloc[0]
    judged = (
        f"predicted {pooled['mean_predicted']:.3f}, won {pooled['won']:.3f}, ECE {pooled['ece']:.3f}"
        if counts["elapsed"]
        else "none elapsed yet"
    )
    typer.echo(
        f"scores written so far: {counts['elapsed']:,} elapsed ({judged}), "
        f"{counts['pending']:,} pending, {counts['gone']:,} of deals gone from the export"
    )
    for reason in result.reasons:
        typer.echo(f"retraining due: {reason}")
    typer.echo(result.decision)
