"""The monitoring commands: how the scores written turned out, and the nightly run that scores,
monitors and retrains. Registered on the app in cli/__init__.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dealscore import documents
from dealscore.cli import render
from dealscore.cli.app import quiet_mlflow
from dealscore.cli.output import echo_config, echo_json, failures
from dealscore.cli.params import (
    ConfigOption,
    DataOption,
    JsonOption,
    MappingOption,
    PrintConfigOption,
    ScoreAsOfOption,
    ScoreModelOption,
    ScoreOutOption,
    ScoresOption,
    StoreFormatOption,
    TrackingOption,
    option,
    optional_timestamp,
)
from dealscore.cli.progress import Progress
from dealscore.flows.nightly import NightlySettings, run_nightly
from dealscore.jobs.monitor import MonitorSettings, run_monitor
from dealscore.jobs.score import ScoreSettings
from dealscore.settings import default, load_settings

MonitorOutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        metavar="FILE",
        help="Also write the table, one row per group, to this CSV (or .parquet) file.",
    ),
]
ModelNameOption = Annotated[
    str | None,
    option(
        metavar="NAME",
        shown="the export's own model",
        help="Whose scores: a registered model name, or '*' for every model's.",
    ),
]
MonitorHorizonOption = Annotated[
    float | None,
    typer.Option(
        metavar="DAYS",
        help="The label window of scores written before dealscore kept it in each row.",
    ),
]
MonitorNightsOption = Annotated[
    int | None,
    option(metavar="N", shown="28", help="How many elapsed nights to list."),
]
SinceOption = Annotated[
    str | None,
    option(
        metavar="DATE",
        shown="every score kept",
        help="Only the scores as of this date (UTC) or later.",
    ),
]
RetrainEveryOption = Annotated[
    float | None,
    option(
        metavar="DAYS",
        shown="30",
        help="Train a challenger once the champion's data is this many days old.",
    ),
]
MaxRealisedEceOption = Annotated[
    float | None,
    option(
        metavar="ECE",
        shown="0.05",
        help="Train a challenger when the champion's last elapsed nights are off by more.",
    ),
]
NightlyNightsOption = Annotated[
    int | None,
    option(metavar="N", shown="28", help="How many elapsed nights the check looks at."),
]
TrainConfigOption = Annotated[
    str | None,
    option(
        metavar="FILE",
        shown="the defaults",
        help="Training settings (TOML) a challenger is trained with.",
    ),
]
RetrainOption = Annotated[
    bool | None,
    option(
        "--retrain/--no-retrain",
        metavar="",
        shown="--retrain",
        help="Train a challenger when one is due, or only say so.",
    ),
]


def monitor(
    data: DataOption,
    scores: ScoresOption = None,
    out: MonitorOutOption = None,
    model_name: ModelNameOption = None,
    horizon_days: MonitorHorizonOption = None,
    nights: MonitorNightsOption = None,
    since: SinceOption = None,
    fmt: StoreFormatOption = None,
    config: ConfigOption = None,
    mapping: MappingOption = None,
    as_json: JsonOption = False,
) -> None:
    """How the scores already written turned out: did the deals called 70% close 70%?

    Every score written (by `score` or `nightly`) whose window (win_probability = won within H
    days of its as_of) ended by the export's own time is checked against what happened: rows,
    mean predicted against won, ECE, Brier and ROC AUC, pooled, per model version, band, month
    and night, with the reps' calls on the same rows and the same for P(lost) and P(no
    decision). Scores whose window is still open are counted as pending, never as losses;
    deals no longer in the export are counted and named.
    """
    quiet_mlflow()
    with failures(f"{data}: not monitored", "monitor" if as_json else ""):
        settings = load_settings(
            MonitorSettings,
            config,
            scores=scores,
            model_name=model_name,
            horizon_days=horizon_days,
            nights=nights,
            format=fmt,
            since=optional_timestamp(since, "--since"),
        )
        result = run_monitor(data, settings, mapping, Progress(), out)
    if as_json:
        echo_json(documents.monitor_document(result, out))
        return
    render.echo_monitor(result, settings.nights)
    if out is not None:
        typer.echo(f"\nwritten to {out} ({len(result.table):,} groups)")


def nightly(
    data: DataOption,
    out: ScoreOutOption = None,
    model: ScoreModelOption = None,
    as_of: ScoreAsOfOption = None,
    retrain_every_days: RetrainEveryOption = None,
    max_realised_ece: MaxRealisedEceOption = None,
    nights: NightlyNightsOption = None,
    train_config: TrainConfigOption = None,
    retrain: RetrainOption = None,
    fmt: StoreFormatOption = None,
    tracking_uri: TrackingOption = None,
    config: ConfigOption = None,
    mapping: MappingOption = None,
    print_config: PrintConfigOption = False,
    as_json: JsonOption = False,
) -> None:
    """The night's whole job: score, see how past scores did, retrain when due.

    Scores every open deal with the champion (as `score`), then reads every score written so
    far against the export's outcomes (as `monitor`), and trains a challenger when the champion
    learned from data older than --retrain-every-days, its last elapsed nights are off by more
    than --max-realised-ece (and than chance), or its inputs drifted. The registry's gate
    decides whether the challenger takes over; the last line says what happened. Each night is
    an MLflow run (experiment dealscore-nightly). A rerun on the same export replaces its scores
    and does not train again.
    """
    quiet_mlflow()
    progress = Progress()
    with failures(f"{data}: nightly run failed", "nightly" if as_json else ""):
        settings = load_settings(
            NightlySettings,
            config,
            out=out,
            model=model,
            format=fmt,
            tracking_uri=tracking_uri,
            retrain_every_days=retrain_every_days,
            max_realised_ece=max_realised_ece,
            nights=nights,
            train_config=train_config,
            retrain=retrain,
        )
        if print_config:
            echo_config(settings)
        stamp = optional_timestamp(as_of, "--as-of")
        result = run_nightly(data, settings, stamp, mapping, progress=progress)
    if as_json:
        echo_json(documents.nightly_document(result, progress.warnings))
        return
    render.echo_nightly(result, default(ScoreSettings, "psi_warning"))
