"""The `dealscore` command line: a thin Typer layer over the jobs."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import mlflow  # noqa: F401  - imported first: it sets its loggers up on import
import numpy as np
import pandas as pd
import typer

from dealscore import __version__, documents
from dealscore.errors import DealscoreError
from dealscore.features import CATALOGUE
from dealscore.flows.nightly import NightlySettings, run_nightly
from dealscore.io.icp import BUILTIN_ICP
from dealscore.io.secrets import redact
from dealscore.io.write import TableFormat
from dealscore.jobs.compare import run_backtest, run_compare
from dealscore.jobs.evaluate import run_evaluate
from dealscore.jobs.features import run_build_features
from dealscore.jobs.generate import run_generate
from dealscore.jobs.ingest import run_ingest, run_validate
from dealscore.jobs.monitor import MonitorResult, MonitorSettings, run_monitor
from dealscore.jobs.report import run_report
from dealscore.jobs.score import (
    ScoreResult,
    ScoreSettings,
    run_score,
)
from dealscore.jobs.train import run_train
from dealscore.pipeline.forward import ForwardTest
from dealscore.pipeline.moves import Moves
from dealscore.pipeline.periods import WEEKS, period_bounds
from dealscore.pipeline.quarter import RANGE_WORDS, QuarterNumber
from dealscore.pipeline.training import TrainSettings
from dealscore.schemas import ContractError
from dealscore.settings import as_toml, default, load_settings
from dealscore.synthetic import DEFAULT_EXPORT_DATE, GeneratorSettings
from dealscore.terminal import WARNING, LiveBars, TimedLines

app = typer.Typer(
    help="Calibrated win probabilities for B2B deals, learned from your CRM history.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"max_content_width": 120},  # Click's own cap is 80 columns
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
FEATURES_HELP = "Point-in-time features: list the catalogue, build a feature frame."
features_app = typer.Typer(help=FEATURES_HELP, no_args_is_help=True, rich_markup_mode=None)
app.add_typer(features_app, name="features", short_help=FEATURES_HELP)


def _option(*names: str, shown: str, **options: Any) -> Any:
    """`typer.Option` whose default is said in words ("the export's own time"), printed
    `[default: ...]` like any other default rather than in Click's parentheses."""
    said = options.pop("help", "")
    return typer.Option(*names, help=f"{said}  [default: {shown}]", show_default=False, **options)


MappingOption = Annotated[
    str | None,
    typer.Option(
        "--mapping",
        "-m",
        metavar="PRESET|FILE",
        help="A raw export's column mapping: a preset (salesforce) or a YAML file "
        "(docs/mappings.md).",
    ),
]
DataOption = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        metavar="FOLDER|URL",
        help="The export: a folder of tables or a SQLAlchemy URL.",
    ),
]
FormatOption = Annotated[
    str,
    typer.Option(
        "--format", metavar="FORMAT", help="File format of the written tables: parquet or csv."
    ),
]
PrintConfigOption = Annotated[
    bool,
    typer.Option(
        "--print-config",
        metavar="",
        help="Print the effective settings (file, then options, over the defaults) as TOML "
        "and exit.",
    ),
]


def _print_config(values: object) -> None:
    typer.echo(as_toml(values), nl=False)
    raise typer.Exit()


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE", help="Settings file (TOML); options given on the command line override it."
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dealscore {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            metavar="",
            help="Show the version and exit.",
        ),
    ] = False,
    no_progress: Annotated[
        bool,
        typer.Option(
            "--no-progress",
            envvar="DEALSCORE_NO_PROGRESS",
            help="Timed progress lines instead of live bars, even at a terminal.",
        ),
    ] = False,
) -> None:
    """Calibrated win probabilities for B2B deals, learned from your CRM history."""
    _library_warnings_to_log()
    _LIVE["allowed"] = not no_progress


def _library_warnings_to_log() -> None:
    """Python warnings from the libraries underneath (pandas deprecations, NumPy's RuntimeWarning,
    MLflow's notices) go to the `py.warnings` log, not the terminal: what matters to the user
    is said by the jobs in their own words. `python -W ...` or PYTHONWARNINGS shows them."""
    if not sys.warnoptions:
        logging.captureWarnings(True)
        logging.getLogger("py.warnings").propagate = False


def _quiet_mlflow() -> None:
    """MLflow's INFO lines (store migrations, "Created version") would bury the job's own
    output. It sets its loggers up when imported, so import it first, then quiet them."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def _count(n: int, noun: str) -> str:
    """'1 error', '1,204 errors'."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _signed_pct(value: float) -> str:
    """'+12%', '-3%', and '0%' for anything that rounds to nothing (never '-0%')."""
    return "0%" if round(value * 100) == 0 else f"{value:+.0%}"


def _fail(message: str, code: int = 2) -> None:
    typer.secho(redact(message), fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _contract_failure(exc: ContractError, what: str) -> None:
    """Print every broken rule, then exit 1: the export, not the command, is at fault."""
    typer.echo(redact(exc.report.to_text()))
    _fail(f"{what}: the export breaks the data contract", code=1)


@contextmanager
def _failures(what: str = "", json_command: str = "") -> Iterator[None]:
    """The one place a failure becomes a message and an exit code: a broken data contract prints
    every broken rule (exit 1); any other DealscoreError its message, with its exit code. With
    --json (json_command) the same in a JSON document on stdout, the line on stderr too.
    Anything else is a bug and keeps its traceback."""
    try:
        yield
    except ContractError as exc:
        _stop_progress()
        said = what or "the export breaks the data contract"
        if json_command:
            message = f"{said}: the export breaks the data contract"
            _echo_json(documents.failure(json_command, message, 1, exc.report.issues))
            _fail(message, code=1)
        _contract_failure(exc, said)
    except DealscoreError as exc:
        _stop_progress()
        if json_command:
            _echo_json(documents.failure(json_command, redact(str(exc)), exc.exit_code))
        _fail(str(exc), exc.exit_code)
    finally:
        _stop_progress()


def _echo_json(doc: dict) -> None:
    typer.echo(json.dumps(doc, indent=2, allow_nan=False))


JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document on stdout instead of the text summary (docs/json.md).",
    ),
]


def _table_format(fmt: str) -> TableFormat:
    if fmt not in ("parquet", "csv"):
        _fail(f"--format must be parquet or csv, got {fmt!r}")
    return fmt  # type: ignore[return-value]


# Progress displays still running: `_failures` stops them when the job is done, before the
# command prints its summary.
_SHOWING: list[LiveBars | TimedLines] = []
_LIVE = {"allowed": True}  # --no-progress turns the bars off


class _Progress:
    """Progress on stderr, so stdout stays clean for the summary: live bars at an interactive
    terminal, timed lines otherwise; the warnings said along the way are kept for --json."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.show = LiveBars() if _LIVE["allowed"] and sys.stderr.isatty() else TimedLines()
        _SHOWING.append(self.show)

    def __call__(self, message: str) -> None:
        message = redact(message)
        if message.startswith(WARNING):
            self.warnings.append(message.removeprefix(WARNING))
        self.show(message)


def _stop_progress() -> None:
    while _SHOWING:
        _SHOWING.pop().close()


@app.command()
def generate(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="FOLDER",
            help="Folder to write the tables (and the truth files) into.",
        ),
    ],
    deals: Annotated[
        int | None, _option(metavar="N", shown="20000", help="Number of deals.")
    ] = None,
    seed: Annotated[
        int | None,
        _option(metavar="N", shown="0", help="Random seed: the same seed gives the same CRM."),
    ] = None,
    export_date: Annotated[
        str | None,
        _option(
            metavar="DATE",
            shown=DEFAULT_EXPORT_DATE,
            help="The export's 'now' (YYYY-MM-DD, UTC): open deals are open as of this date. The "
            "default is the documented demo's, so its figures reproduce.",
        ),
    ] = None,
    years: Annotated[
        float | None,
        _option(metavar="YEARS", shown="3", help="Years of history before the export date."),
    ] = None,
    config: ConfigOption = None,
    fmt: FormatOption = "parquet",
    print_config: PrintConfigOption = False,
) -> None:
    """Generate a synthetic CRM export: all seven tables plus the truth files.

    Every deal runs forward in time from a hidden health; the truth files hold its path, its win
    probability at creation and how open deals end. Training reads them only to report the
    ceiling no model can beat; scoring never does.
    """
    table_format = _table_format(fmt)
    stamp = _timestamp(export_date, "--export-date") if export_date else None
    with _failures():
        settings = load_settings(
            GeneratorSettings, config, deals=deals, seed=seed, export_date=stamp, years=years
        )
    if settings.export_date is None:  # neither the option nor the file set it
        settings = replace(settings, export_date=pd.Timestamp(DEFAULT_EXPORT_DATE, tz="UTC"))
    if print_config:
        _print_config(settings)
    with _failures():
        result = run_generate(settings, out, table_format, progress=_Progress())
    typer.echo(result.summary.to_text())
    typer.echo(
        f"wrote {len(result.files)} tables to {result.out} and the truth files "
        f"({', '.join(p.name for p in result.truth)}) in {result.seconds:.1f}s"
    )


@app.command()
def validate(
    path: Annotated[
        str,
        typer.Argument(
            metavar="FOLDER|URL",
            help="A folder of CSV/Parquet tables, or a SQLAlchemy database URL.",
            show_default=False,
        ),
    ],
    mapping: MappingOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check an export against the data contract and summarise it.

    Reports every broken rule by table, column, rule, failing-row count and examples. Exits 1
    when there are errors; warnings (an open deal with no account, say) do not fail.
    """
    # a file that is no table (a ragged CSV row, say) fails the read itself
    with _failures(f"{path}: INVALID", "validate" if as_json else ""):
        result = run_validate(path, mapping, progress=_Progress())
    if as_json:
        _echo_json(documents.validate_document(result))
        raise typer.Exit(0 if result.report.ok else 1)
    for note in result.notes:
        typer.echo(f"note: {note}")
    if result.summary is not None:
        typer.echo(result.summary.to_text())
    typer.echo(result.report.to_text())
    if not result.report.ok:
        typer.secho(
            f"{result.source}: INVALID ({_count(len(result.report.errors), 'error')})",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    typer.secho(f"{result.source}: valid", fg=typer.colors.GREEN)


@app.command()
def ingest(
    src: Annotated[
        str,
        typer.Argument(
            metavar="FOLDER|URL",
            help="The raw export: a folder of CSV/Parquet files, or a SQLAlchemy URL.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="FOLDER", help="Folder to write the contract tables into."
        ),
    ],
    mapping: MappingOption = None,
    fmt: FormatOption = "parquet",
) -> None:
    """Translate a raw export into the contract tables, validate them, and write them.

    Nothing is written when validation finds errors.
    """
    table_format = _table_format(fmt)
    with _failures(f"{src}: not written"):
        result = run_ingest(src, out, mapping, table_format, progress=_Progress())
    for note in result.validation.notes:
        typer.echo(f"note: {note}")
    if result.validation.summary is not None:
        typer.echo(result.validation.summary.to_text())
    if result.validation.report.warnings:
        typer.echo(result.validation.report.to_text())
    typer.echo(f"wrote {len(result.files)} tables to {out}")


def _timestamp(text: str, option: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        _fail(f"{option}: cannot read {text!r} as a date or time (use YYYY-MM-DD or ISO 8601, UTC)")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


@features_app.command("list")
def features_list() -> None:
    """The feature catalogue: name, family, source tables and meaning of every feature."""
    width = max(len(f.name) for f in CATALOGUE)
    for feature in CATALOGUE:
        sources = ",".join(feature.sources)
        typer.echo(
            f"{feature.name:<{width}}  {feature.family:<10}  {sources:<32}  {feature.description}"
        )
    typer.echo(f"{len(CATALOGUE)} features")


@features_app.command("build")
def features_build(
    data: DataOption,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="FILE", help="Parquet file to write the feature frame to."
        ),
    ],
    as_of: Annotated[
        str | None,
        _option(
            metavar="DATE",
            shown="the export's own time",
            help="Features as of this time (UTC); every deal open then gets a row.",
        ),
    ] = None,
    mapping: MappingOption = None,
    icp: Annotated[
        str,
        typer.Option(
            metavar="FILE",
            help="The documented ICP (YAML); builtin: the one shipped with dealscore; '': none.",
        ),
    ] = BUILTIN_ICP,
) -> None:
    """Build features for every deal open at --as-of, using only rows dated before it."""
    stamp = _timestamp(as_of, "--as-of") if as_of else None
    with _failures(f"{data}: no features built"):
        result = run_build_features(data, stamp, out, mapping, icp, progress=_Progress())
    frame = result.frame
    missing = frame.drop(columns=["opportunity_id", "as_of"]).isna().mean()
    typer.echo(
        f"{len(frame):,} open deals x {frame.shape[1] - 2} features as of "
        f"{result.as_of:%Y-%m-%d %H:%M} UTC -> {out}"
    )
    empty = missing[missing == 1].index.tolist()
    if empty:
        typer.echo(f"missing for every deal (no source data): {', '.join(empty)}")


TrackingOption = Annotated[
    str | None,
    _option(
        metavar="URI",
        shown="MLFLOW_TRACKING_URI, else ./mlflow.db",
        help="MLflow tracking URI.",
    ),
]
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", metavar="", help="Print every table: age bands, outcomes, per date."
    ),
]
ORACLE_NOTE = (
    "oracle_* rows (generated data only): the true win probability at the as-of date "
    "(ceiling: what no model can beat) and at the deal's creation"
)


@app.command()
def train(
    data: DataOption,
    config: ConfigOption = None,
    mapping: MappingOption = None,
    n_estimators: Annotated[
        int | None,
        _option(
            metavar="N",
            shown="2000",
            help="Maximum boosting rounds (early stopping picks fewer).",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        _option(metavar="N", shown="0", help="Random seed for snapshots and the model."),
    ] = None,
    heroic_weight: Annotated[
        float | None,
        _option(
            metavar="W",
            shown="1",
            help="Weight of heroic wins' training rows; below 1 also reports the effect.",
        ),
    ] = None,
    tracking_uri: TrackingOption = None,
    track: Annotated[
        bool | None,
        _option(
            "--track/--no-track",
            metavar="",
            shown="--track",
            help="Log the run and register the model in MLflow.",
        ),
    ] = None,
    registered_model: Annotated[
        str | None,
        _option(
            metavar="NAME",
            shown="dealscore-<the export's folder or database>",
            help="Registered model name, one per CRM (set it if the export's location moves).",
        ),
    ] = None,
    allow_coverage_change: Annotated[
        bool | None,
        typer.Option(
            "--allow-coverage-change",
            metavar="",
            show_default=False,
            help="Promote though the export fills other columns than the champion's did.",
        ),
    ] = None,
    horizon_days: Annotated[
        float | None,
        _option(
            metavar="DAYS",
            shown="auto (docs/training.md)",
            help="The label: won within this many days of the snapshot.",
        ),
    ] = None,
    forward_dates: Annotated[
        int | None,
        _option(
            metavar="N",
            shown="3",
            help="Past dates the forward test replays; 0 skips it.",
        ),
    ] = None,
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
    _quiet_mlflow()
    progress = _Progress()
    with _failures(f"{data}: not trained", "train" if as_json else ""):
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
            _print_config(settings)
        result = run_train(data, settings, mapping, progress=progress)
    if as_json:
        _echo_json(documents.train_document(result, progress.warnings))
        return
    _echo_comparison(result.comparison, verbose)
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
        _echo_forward(result.forward, verbose)
    if result.tracking is not None:
        t = result.tracking
        typer.echo(redact(f"MLflow run {t.run_id} ({t.tracking_uri}); model {t.model_uri}"))
        if t.version:
            role = "champion" if t.promoted else "challenger"
            typer.echo(f"registered {t.registered_model} v{t.version} as {role}: {t.reason}")
        typer.echo(redact(f"browse: mlflow ui --backend-store-uri {t.tracking_uri}"))


def _echo_comparison(comparison: pd.DataFrame, verbose: bool) -> None:
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


def _echo_forward(forward: ForwardTest, verbose: bool = True) -> None:
    columns = ["roc_auc", "brier", "log_loss", "ece", "mean_predicted", "actual", "rows"]
    typer.echo("forward test: deals open at each date, model trained only on the export then")
    table = forward.table if verbose else forward.table[forward.table["date"] == "pooled"]
    typer.echo(
        table.set_index(["date", "contender"])[columns]
        .round(4)
        .to_string(formatters={"rows": "{:,.0f}".format})
    )
    typer.echo(forward.summary())


@app.command()
def evaluate(
    data: DataOption,
    as_of: Annotated[
        list[str] | None,
        _option(
            metavar="DATE",
            shown="the latest forward_dates dates, forward_every_days apart, whose "
            "outcomes the export holds",
            help="A past date to replay (repeat for several).",
        ),
    ] = None,
    config: ConfigOption = None,
    mapping: MappingOption = None,
    horizon_days: Annotated[
        float | None,
        _option(metavar="DAYS", shown="0 (auto, as in training)", help="Label horizon in days."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="Also write every scored deal (.csv, or .parquet): date, deal, horizon, label, "
            "each contender's probability.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The forward test on its own: how honest the recipe's probabilities were at past dates.

    At each past date, train on the export as it stood, score every deal open then, and read
    from the later export whether it was won within the horizon. Prints ROC AUC, Brier, log
    loss, ECE and mean predicted vs actual per date and pooled, for the model, the reps'
    forecast and the CRM stage probability on the same deals.
    """
    with _failures(f"{data}: not evaluated", "evaluate" if as_json else ""):
        settings = load_settings(TrainSettings, config, horizon_days=horizon_days, track=False)
        dates = [_timestamp(d, "--as-of") for d in as_of] if as_of else None
        result = run_evaluate(data, settings, dates, mapping, out, _Progress())
    forward = result.forward
    if as_json:
        _echo_json(documents.evaluate_document(forward, result.out))
        return
    _echo_forward(forward)
    typer.echo("reliability (model, pooled):")
    typer.echo(forward.reliability().round(4).to_string(index=False))
    if result.out is not None:
        typer.echo(f"wrote {len(forward.rows):,} scored deals to {result.out}")


MODEL_HELP = "Model URI (models:/NAME@ALIAS, runs:/RUN_ID/model) or folder; loading runs its code."
ScoreOutOption = Annotated[
    str | None,
    _option(
        "--out",
        "-o",
        metavar="URL|FOLDER",
        shown="sqlite:///scores.db",
        help="Where scores go: a SQLAlchemy or JDBC URL, or a folder (docs/scoring.md).",
    ),
]
ScoreModelOption = Annotated[
    str | None,
    _option(
        metavar="URI",
        shown="models:/dealscore-<the export's name>@champion",
        help=MODEL_HELP,
    ),
]
ScoreAsOfOption = Annotated[
    str | None,
    _option(
        "--as-of",
        metavar="DATE",
        shown="the export's own time",
        help="Score the deals open at this time (UTC); a past date sees the data as it stood.",
    ),
]


@app.command()
def score(
    data: DataOption,
    out: ScoreOutOption = None,
    model: ScoreModelOption = None,
    as_of: ScoreAsOfOption = None,
    config: ConfigOption = None,
    mapping: MappingOption = None,
    fmt: Annotated[
        str | None,
        _option(
            "--format",
            metavar="FORMAT",
            shown="parquet",
            help="For a folder destination: parquet or csv.",
        ),
    ] = None,
    tracking_uri: TrackingOption = None,
    engine: Annotated[
        str | None,
        _option(
            metavar="ENGINE",
            shown="pandas",
            help="pandas (one process) or spark (docs/spark.md).",
        ),
    ] = None,
    spark_master: Annotated[
        str | None,
        _option(
            metavar="URL",
            shown="the active session, else local[*]",
            help="Spark's master URL (local[4], spark://host:7077, yarn).",
        ),
    ] = None,
    spark_groups: Annotated[
        int | None,
        _option(
            metavar="N",
            shown="4 per core",
            help="With --engine spark: groups of deals scored in parallel.",
        ),
    ] = None,
    rep_reasons: Annotated[
        bool | None,
        _option(
            "--rep-reasons/--no-rep-reasons",
            metavar="",
            shown="--no-rep-reasons",
            help="Let the rep's own forecast be a reason (it is always an input).",
        ),
    ] = None,
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
    _quiet_mlflow()
    progress = _Progress()
    with _failures(f"{data}: not scored", "score" if as_json else ""):
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
            _print_config(settings)
        stamp = _timestamp(as_of, "--as-of") if as_of else None
        result = run_score(data, settings, stamp, mapping, progress=progress)
    if as_json:
        _echo_json(documents.score_document(result, progress.warnings))
        return
    _echo_scores(result, settings.psi_warning)


def _echo_scores(result: ScoreResult, psi_warning: float) -> None:
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


def _forecast_table(table: pd.DataFrame) -> str:
    """Amounts with thousands separators; each forecast's error as a signed share of the actual
    (above 0: it over-forecast)."""
    keep = [c for c in table if not c.endswith("_error") or c.endswith("_pct_error")]
    shown = table[[c for c in keep if not c.endswith("_abs_pct_error")]]
    shown = shown.rename(columns={c: c.replace("_pct_error", " err") for c in shown})
    money = {c: "{:,.0f}".format for c in shown if c in ("actual", "model") or c.startswith("rep_")}
    pct = {c: _signed_pct for c in shown if c.endswith(" err")}
    return shown.to_string(index=False, formatters={**money, **pct}, na_rep="-")


PeriodsOption = Annotated[
    int, typer.Option(min=1, metavar="N", help="How many of the last closed quarters to replay.")
]


def _number_lines(number: QuarterNumber) -> list[str]:
    """The quarter's number with its parts and range, then the reps' rollups beside it."""
    lines = [
        f"the quarter's number (model): {number.model:,.0f} = booked {number.booked:,.0f} "
        f"+ the {number.open_deals:,} open deals {number.open:,.0f} "
        f"+ deals not yet created {number.new:,.0f}; "
        f"{RANGE_WORDS} {number.low:,.0f} to {number.high:,.0f}",
        *number.notes,
    ]
    if not np.isnan(number.rep_commit):
        lines.append(
            f"the reps' rollups: booked + commit {number.rep_commit:,.0f}, "
            f"booked + commit + best case {number.rep_commit_best_case:,.0f}"
        )
    return lines


def _moves_lines(moves: Moves) -> list[str]:
    """The pipeline's moves since the earlier date, and the deals whose probability moved most."""
    lines = [
        f"what moved since {moves.since:%Y-%m-%d %H:%M} UTC: the pipeline due in the quarter "
        f"went from {moves.start:,.0f} to {moves.end:,.0f}"
    ]
    flow = moves.flow.to_string(index=False, formatters={"amount": "{:+,.0f}".format})
    lines += ["  " + line for line in flow.splitlines()]
    top = moves.top()
    if not top.empty:
        lines.append(f"the {len(top)} deals whose probability moved most (by amount at stake):")
        for _, row in top.iterrows():
            lines.append(
                f"  {row['deal']} ({row['owner'] or 'no owner'}, {row['amount']:,.0f}): "
                f"{row['p_then']:.0%} -> {row['p_now']:.0%}: {row['change_reason']}"
            )
    return lines


@app.command()
def compare(
    data: DataOption,
    period: Annotated[
        str | None,
        _option(
            metavar="QUARTER",
            shown="the quarter of the export's own time",
            help="The quarter to forecast, e.g. 2026Q3.",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        _option(
            "--as-of",
            metavar="DATE",
            shown="the export's own time; for a quarter already over, its start",
            help="Forecast as of this date (UTC).",
        ),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(metavar="GROUP", help="Break down by team, owner or segment (industry)."),
    ] = None,
    since: Annotated[
        str | None,
        _option(
            "--since",
            metavar="DATE",
            shown="a week before --as-of",
            help="Show what moved in the quarter's pipeline from this date (UTC) to --as-of.",
        ),
    ] = None,
    model: ScoreModelOption = None,
    tracking_uri: TrackingOption = None,
    mapping: MappingOption = None,
    as_json: JsonOption = False,
) -> None:
    """A quarter's bookings forecast: the model's against the reps' and, once over, the actual.

    The quarter's number, whole, when --as-of lies in it: booked so far + every open deal's
    amount x P(won before the quarter ends) + what deals not yet created will bring (learned
    from past quarters at the same point), with a range, beside the reps' rollups (booked +
    commit, booked + commit + best case). Then, on the deals open at --as-of and due in the
    quarter, the model against the reps' commit, commit + best case and probability-weighted
    call; for a quarter already over the actual and each forecast's error. And what moved
    since --since: deals won, lost, pushed out, pulled in, new, and the deals whose
    probability moved most, with the factors that moved it.
    """
    _quiet_mlflow()
    with _failures(f"{data}: not compared", "compare" if as_json else ""):
        if period is not None:
            period_bounds(period)  # a bad quarter is refused before any data is read
        stamp = _timestamp(as_of, "--as-of") if as_of else None
        since_stamp = _timestamp(since, "--since") if since else None
        if stamp is not None and since_stamp is not None and since_stamp >= stamp:
            _fail(f"--since ({since}) must be before --as-of ({as_of})")
        result = run_compare(
            data,
            period,
            stamp,
            by,
            model or "",
            tracking_uri or "",
            mapping,
            _Progress(),
            since=since_stamp,
        )
    if as_json:
        _echo_json(documents.compare_document(result))
        return
    state = "closed: actual known" if result.closed else "still open: no actual yet"
    typer.echo(
        f"{result.period} as of {result.as_of:%Y-%m-%d %H:%M} UTC, {state}; "
        f"{result.model.describe()}"
    )
    if result.coverage_warning:
        typer.secho(f"WARNING: {result.coverage_warning}", fg=typer.colors.YELLOW)
    if result.number is not None:
        for line in _number_lines(result.number):
            typer.echo(line)
    if result.numbers is not None:
        typer.echo(f"by {by}:")
        typer.echo(
            result.numbers.rename(
                columns={"group": by or "group", "new": "not yet created"}
            ).to_string(index=False, float_format="{:,.0f}".format, na_rep="-")
        )
    if result.moves is not None:
        for line in _moves_lines(result.moves):
            typer.echo(line)
    typer.echo("on the deals due in the quarter only:")
    if result.deals.empty:
        typer.echo(
            "no deal open then has an expected close date in the period "
            "(the forecast needs stage history with close dates)"
        )
        return
    typer.echo(_forecast_table(result.table.rename(columns={"group": by or "group"})))
    if result.closed:  # the model saw these outcomes in training
        typer.secho(
            "in-sample: this model was trained on this export, outcomes of this quarter "
            "included, so its error here flatters it; `dealscore backtest` replays the quarter "
            "with a model trained only on the history before it",
            fg=typer.colors.YELLOW,
        )


WeeksOption = Annotated[
    str,
    typer.Option(
        metavar="LIST",
        help="The weeks into each quarter to forecast it at, comma-separated (0: its start).",
    ),
]


DEFAULT_WEEKS = ",".join(map(str, WEEKS))


def _weeks(text: str) -> tuple[int, ...]:
    """'0,4,8' -> (0, 4, 8); a week outside 0 to 13 or not a number is refused."""
    try:
        weeks = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        weeks = ()
    if not weeks or weeks[0] < 0 or weeks[-1] > 13:
        _fail(f"--weeks must be whole weeks from 0 to 13, comma-separated, got {text!r}")
    return weeks


def _accuracy_table(accuracy: pd.DataFrame) -> str:
    """Per week and forecast: accuracy ratio, absolute error, bias, and the counts."""
    shown = accuracy.rename(
        columns={
            "accuracy_ratio": "forecast/actual",
            "abs_pct_error": "abs err",
            "in_green": "in 85-115%",
            "in_range": "actual in range",
            "model_closer": "model closer",
        }
    )
    counts = [c for c in ("actual in range", "model closer") if c in shown]
    formats = {
        "forecast/actual": "{:.0%}".format,
        "abs err": "{:.1%}".format,
        "bias": _signed_pct,
        **{c: (lambda v: "-" if pd.isna(v) else f"{v:.0f}") for c in counts},
    }
    return shown.to_string(index=False, formatters=formats, na_rep="-")


@app.command()
def backtest(
    data: DataOption,
    periods: PeriodsOption = 8,
    weeks: WeeksOption = DEFAULT_WEEKS,
    config: ConfigOption = None,
    mapping: MappingOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="Also write every forecast as CSV: period, week, as_of, forecast, amount, actual.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay the last closed quarters through the quarter, with models that knew only the past.

    Each quarter is forecast whole (booked + the open deals + deals not yet created, with a
    range) every two weeks into it (weeks 0 to 12) by a model trained only on the history
    before the quarter, and set against its total bookings, beside the reps' rollups (booked +
    commit, booked + commit + best case). Prints each forecast's accuracy per week.
    """
    chosen = _weeks(weeks)
    with _failures(f"{data}: not backtested", "backtest" if as_json else ""):
        settings = load_settings(TrainSettings, config)
        result = run_backtest(data, periods, settings, mapping, _Progress(), chosen, out)
    if as_json:
        _echo_json(documents.backtest_document(result, out))
        return
    for period, why in result.skipped.items():
        typer.echo(f"{period}: skipped: {why}")
    wide = result.wide()
    first = wide[wide["week"] == wide["week"].min()]
    columns = ["period", "actual", "model", "model_low", "model_high", "booked", "model_open"]
    columns += ["model_new", *[c for c in ("rep_commit", "rep_commit_best_case") if c in first]]
    typer.echo(f"each quarter at week {int(first['week'].iloc[0])}:")
    typer.echo(
        first[columns]
        .rename(
            columns={
                "model_low": "low",
                "model_high": "high",
                "model_open": "open",
                "model_new": "not yet created",
            }
        )
        .to_string(index=False, float_format="{:,.0f}".format, na_rep="-")
    )
    quarters = wide["period"].nunique()
    typer.echo(f"accuracy per week over {quarters} quarter{'' if quarters == 1 else 's'}:")
    typer.echo(_accuracy_table(result.accuracy()))


ScoresOption = Annotated[
    str | None,
    _option(
        "--scores",
        metavar="URL|FOLDER",
        shown="sqlite:///scores.db",
        help="Where `score` wrote its scores: a database URL or a folder.",
    ),
]


@app.command()
def report(
    data: DataOption,
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="FILE", help="Where to write the HTML page.")
    ] = Path("report.html"),
    periods: PeriodsOption = 4,
    config: ConfigOption = None,
    model: ScoreModelOption = None,
    tracking_uri: TrackingOption = None,
    mapping: MappingOption = None,
    currency: Annotated[
        str,
        _option(
            metavar="CODE",
            shown="none: the export's own",
            help="The currency the export's amounts are in, shown beside them (USD, EUR).",
        ),
    ] = "",
    scores: ScoresOption = None,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            metavar="",
            help="Reuse the past quarters' replay of the same export and settings "
            "(DEALSCORE_CACHE, else ~/.cache/dealscore).",
        ),
    ] = True,
) -> None:
    """Write one HTML page for the weekly forecast call, viewable offline.

    This quarter so far (booked, the model's and the reps' call), past quarters replayed with
    models trained only on the history before each, the deals to act on with their reasons,
    the open pipeline by band, how far the probabilities can be trusted, deals with no next
    step booked, and deals drifting into no decision.
    """
    _quiet_mlflow()
    with _failures(f"{data}: no report"):
        settings = load_settings(TrainSettings, config)
        result = run_report(
            data,
            out,
            periods,
            model=model or "",
            tracking_uri=tracking_uri or "",
            mapping=mapping,
            settings=settings,
            progress=_Progress(),
            currency=currency,
            use_cache=cache,
            scores_at=scores or "",
        )
    typer.echo(f"report with {_count(result.charts, 'chart')} written to {result.path}")


def _monitor_table(table: pd.DataFrame) -> str:
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


def _echo_monitor(result: MonitorResult, nights: int) -> None:
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
            typer.echo(f"\n{title}:\n{_monitor_table(part)}")
    elapsed = table[(table["by"] == "as_of") & (table["rows"] > 0)]
    if len(elapsed):
        typer.echo(f"\nthe last {min(nights, len(elapsed))} elapsed nights:")
        typer.echo(_monitor_table(elapsed.tail(nights)))


@app.command()
def monitor(
    data: DataOption,
    scores: ScoresOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="Also write the table, one row per group, to this CSV (or .parquet) file.",
        ),
    ] = None,
    model_name: Annotated[
        str | None,
        _option(
            metavar="NAME",
            shown="the export's own model",
            help="Whose scores: a registered model name, or '*' for every model's.",
        ),
    ] = None,
    horizon_days: Annotated[
        float | None,
        typer.Option(
            metavar="DAYS",
            help="The label window of scores written before dealscore kept it in each row.",
        ),
    ] = None,
    nights: Annotated[
        int | None,
        _option(metavar="N", shown="28", help="How many elapsed nights to list."),
    ] = None,
    since: Annotated[
        str | None,
        _option(
            metavar="DATE",
            shown="every score kept",
            help="Only the scores as of this date (UTC) or later.",
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", metavar="FORMAT", help="A folder store's files: parquet or csv."),
    ] = None,
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
    _quiet_mlflow()
    with _failures(f"{data}: not monitored", "monitor" if as_json else ""):
        settings = load_settings(
            MonitorSettings,
            config,
            scores=scores,
            model_name=model_name,
            horizon_days=horizon_days,
            nights=nights,
            format=fmt,
            since=_timestamp(since, "--since") if since else None,
        )
        result = run_monitor(data, settings, mapping, _Progress(), out)
    if as_json:
        _echo_json(documents.monitor_document(result, out))
        return
    _echo_monitor(result, settings.nights)
    if out is not None:
        typer.echo(f"\nwritten to {out} ({len(result.table):,} groups)")


@app.command()
def nightly(
    data: DataOption,
    out: ScoreOutOption = None,
    model: ScoreModelOption = None,
    as_of: ScoreAsOfOption = None,
    retrain_every_days: Annotated[
        float | None,
        _option(
            metavar="DAYS",
            shown="30",
            help="Train a challenger once the champion's data is this many days old.",
        ),
    ] = None,
    max_realised_ece: Annotated[
        float | None,
        _option(
            metavar="ECE",
            shown="0.05",
            help="Train a challenger when the champion's last elapsed nights are off by more.",
        ),
    ] = None,
    nights: Annotated[
        int | None,
        _option(metavar="N", shown="28", help="How many elapsed nights the check looks at."),
    ] = None,
    train_config: Annotated[
        str | None,
        _option(
            metavar="FILE",
            shown="the defaults",
            help="Training settings (TOML) a challenger is trained with.",
        ),
    ] = None,
    retrain: Annotated[
        bool | None,
        _option(
            "--retrain/--no-retrain",
            metavar="",
            shown="--retrain",
            help="Train a challenger when one is due, or only say so.",
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", metavar="FORMAT", help="A folder store's files: parquet or csv."),
    ] = None,
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
    _quiet_mlflow()
    progress = _Progress()
    with _failures(f"{data}: nightly run failed", "nightly" if as_json else ""):
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
            _print_config(settings)
        stamp = _timestamp(as_of, "--as-of") if as_of else None
        result = run_nightly(data, settings, stamp, mapping, progress=progress)
    if as_json:
        _echo_json(documents.nightly_document(result, progress.warnings))
        return
    _echo_scores(result.score, default(ScoreSettings, "psi_warning"))
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


# The command list shows each command's first docstring line whole (Click would cut it at 45
# characters with "...").
for _info in [*app.registered_commands, *features_app.registered_commands]:
    if _info.short_help is None and _info.callback is not None:
        _info.short_help = (_info.callback.__doc__ or "").strip().splitlines()[0]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
