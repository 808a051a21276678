"""The `dealscore` command line: a thin Typer layer over the jobs, one module per command group
(data, train, score, forecast, report, monitor), their shared options in `params`."""

from __future__ import annotations

from dealscore.cli import data, forecast, monitor, report, score, train
from dealscore.cli.app import app, features_app, register

__all__ = ["app"]

# Registered here, in the order `dealscore --help` lists them (the features group comes last).
for _command in (
    data.generate,
    data.validate,
    data.ingest,
    train.train,
    train.evaluate,
    score.score,
    forecast.compare,
    forecast.backtest,
    report.report,
    monitor.monitor,
    monitor.nightly,
):
    register(app, _command)
register(features_app, data.features_list, "list")
register(features_app, data.features_build, "build")
