"""The training commands: train (and register) a model, and evaluate the recipe at past dates.
Registered on the app in cli/__init__.py."""

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
    TrackingOption,
    option,
    timestamp,
)
from dealscore.cli.progress import Progress
from dealscore.jobs.evaluate import run_evaluate
from dealscore.jobs.train import run_train
from dealscore.pipeline.training import TrainSettings
from dealscore.settings import load_settings

EstimatorsOption = Annotated[
    int | None,
    option(
        metavar="N",
        shown="2000",
        help="Maximum boosting rounds (early stopping picks fewer).",
    ),
]
TrainSeedOption = Annotated[
    int | None,
    option(metavar="N", shown="0", help="Random seed for snapshots and the model."),
]
HeroicWeightOption = Annotated[
    float | None,
    option(
        metavar="W",
        shown="1",
        help="Weight of heroic wins' training rows; below 1 also reports the effect.",
    ),
]
TrackOption = Annotated[
    bool | None,
    option(
        "--track/--no-track",
        metavar="",
        shown="--track",
        help="Log the run and register the model in MLflow.",
    ),
]
RegisteredModelOption = Annotated[
    str | None,
    option(
        metavar="NAME",
        shown="dealscore-<the export's folder or database>",
        help="Registered model name, one per CRM (set it if the export's location moves).",
    ),
]
CoverageChangeOption = Annotated[
    bool | None,
    typer.Option(
        "--allow-coverage-change",
        metavar="",
        show_default=False,
        help="Promote though the export fills other columns than the champion's did.",
    ),
]
TrainHorizonOption = Annotated[
    float | None,
    option(
        metavar="DAYS",
        shown="auto (docs/training.md)",
        help="The label: won within this many days of the snapshot.",
    ),
]
ForwardDatesOption = Annotated[
    int | None,
    option(
        metavar="N",
        shown="3",
        help="Past dates the forward test replays; 0 skips it.",
    ),
]
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", metavar="", help="Print every table: age bands, outcomes, per date."
    ),
]
EvaluateAsOfOption = Annotated[
    list[str] | None,
    option(
        metavar="DATE",
        shown="the latest forward_dates dates, forward_every_days apart, whose "
        "outcomes the export holds",
        help="A past date to replay (repeat for several).",
    ),
]
EvaluateHorizonOption = Annotated[
    float | None,
    option(metavar="DAYS", shown="0 (auto, as in training)", help="Label horizon in days."),
]
EvaluateOutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        metavar="FILE",
        help="Also write every scored deal (.csv, or .parquet): date, deal, horizon, label, "
        "each contender's probability.",
    ),
]


def train(
    data: DataOption,
    config: ConfigOption = None,
    mapping: MappingOption = None,
    n_estimators: EstimatorsOption = None,
    seed: TrainSeedOption = None,
    heroic_weight: HeroicWeightOption = None,
    tracking_uri: TrackingOption = None,
    track: TrackOption = None,
    registered_model: RegisteredModelOption = None,
    allow_coverage_change: CoverageChangeOption = None,
    horizon_days: TrainHorizonOption = None,
    forward_dates: ForwardDatesOption = None,
    verbose: VerboseOption = False,
    print_config: PrintConfigOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train, test against the baselines and forward in time, register in MLflow.

    Snapshots of every deal open on a calendar grid, labelled won within the horizon, are
    cross-fitted over purged time folds through the model ladder (the CRM's own stage and
    forecast rates, logistic regression, LightGBM): the data picks the rung, calibrated on its
    out-of-fold scores. Every contender is compared on the newest fold, the recipe is replayed
    at past dates (the forward test), and the run is logged to MLflow. The model is registered
    under one name per CRM (--registered-model), alias `challenger`, and becomes `champion` if
    it is not worse than the current champion on the same rows, its forward test is calibrated
    and not worse than a simpler rung's, and its export fills the same columns as the
    champion's.
    """
    quiet_mlflow()
    progress = Progress()
    with failures(f"{data}: not trained", "train" if as_json else ""):
        settings = load_settings(
            TrainSettings,
            config,
            n_estimators=n_estimators,
            seed=seed,
            heroic_weight=heroic_weight,
            tracking_uri=tracking_uri,
            track=track,
            registered_model=registered_model,
            allow_coverage_change=allow_coverage_change,
            horizon_days=horizon_days,
            forward_dates=forward_dates,
        )
        if print_config:
            echo_config(settings)
        result = run_train(data, settings, mapping, progress=progress)
    if as_json:
        echo_json(documents.train_document(result, progress.warnings))
        return
    render.echo_train(result, verbose)


def evaluate(
    data: DataOption,
    as_of: EvaluateAsOfOption = None,
    config: ConfigOption = None,
    mapping: MappingOption = None,
    horizon_days: EvaluateHorizonOption = None,
    out: EvaluateOutOption = None,
    as_json: JsonOption = False,
) -> None:
    """The forward test on its own: how honest the recipe's probabilities were at past dates.

    At each past date, train on the export as it stood, score every deal open then, and read
    from the later export whether it was won within the horizon. Prints ROC AUC, Brier, log
    loss, ECE and mean predicted vs actual per date and pooled, for the model, the reps'
    forecast and the CRM stage probability on the same deals.
    """
    with failures(f"{data}: not evaluated", "evaluate" if as_json else ""):
        settings = load_settings(TrainSettings, config, horizon_days=horizon_days, track=False)
        dates = [timestamp(d, "--as-of") for d in as_of] if as_of else None
        result = run_evaluate(data, settings, dates, mapping, out, Progress())
    if as_json:
        echo_json(documents.evaluate_document(result.forward, result.out))
        return
    render.echo_evaluate(result)
