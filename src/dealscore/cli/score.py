"""The score command: score every open deal with the champion and write the scores back.
Registered on the app in cli/__init__.py."""

from __future__ import annotations

from typing import Annotated

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
    TrackingOption,
    option,
    optional_timestamp,
)
from dealscore.cli.progress import Progress
from dealscore.jobs.score import ScoreSettings, run_score
from dealscore.settings import load_settings

ScoreFormatOption = Annotated[
    str | None,
    option(
        "--format",
        metavar="FORMAT",
        shown="parquet",
        help="For a folder destination: parquet or csv.",
    ),
]
EngineOption = Annotated[
    str | None,
    option(
        metavar="ENGINE",
        shown="pandas",
        help="pandas (one process) or spark (docs/spark.md).",
    ),
]
SparkMasterOption = Annotated[
    str | None,
    option(
        metavar="URL",
        shown="the active session, else local[*]",
        help="Spark's master URL (local[4], spark://host:7077, yarn).",
    ),
]
SparkGroupsOption = Annotated[
    int | None,
    option(
        metavar="N",
        shown="4 per core",
        help="With --engine spark: groups of deals scored in parallel.",
    ),
]
RepReasonsOption = Annotated[
    bool | None,
    option(
        "--rep-reasons/--no-rep-reasons",
        metavar="",
        shown="--no-rep-reasons",
        help="Let the rep's own forecast be a reason (it is always an input).",
    ),
]


def score(
    data: DataOption,
    out: ScoreOutOption = None,
    model: ScoreModelOption = None,
    as_of: ScoreAsOfOption = None,
    config: ConfigOption = None,
    mapping: MappingOption = None,
    fmt: ScoreFormatOption = None,
    tracking_uri: TrackingOption = None,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
    spark_groups: SparkGroupsOption = None,
    rep_reasons: RepReasonsOption = None,
    print_config: PrintConfigOption = False,
    as_json: JsonOption = False,
) -> None:
    """Score every open deal with the champion model and write the scores back.

    Each row: calibrated win probability, band A-D, expected amount, the top 3 factors raising
    and lowering it in plain words, the previous score with a trend, and why a score moved. A
    rerun replaces its own rows; deals that cannot be scored are written to a rejected table with the reason, and
    above max_rejected_share (5%) nothing is written and the command exits 1.

    --engine spark does the same on a Spark cluster, with the same results.
    """
    quiet_mlflow()
    progress = Progress()
    with failures(f"{data}: not scored", "score" if as_json else ""):
        settings = load_settings(
            ScoreSettings,
            config,
            out=out,
            model=model,
            format=fmt,
            tracking_uri=tracking_uri,
            engine=engine,
            spark_master=spark_master,
            spark_groups=spark_groups,
            rep_reasons=rep_reasons,
        )
        if print_config:
            echo_config(settings)
        stamp = optional_timestamp(as_of, "--as-of")
        result = run_score(data, settings, stamp, mapping, progress=progress)
    if as_json:
        echo_json(documents.score_document(result, progress.warnings))
        return
    render.echo_scores(result, settings.psi_warning)
