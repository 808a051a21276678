"""Job: one self-contained HTML page for sales ops, viewable offline.

Top to bottom it answers what a sales manager asks: this quarter so far (booked, and the call of
the model and of the reps), how the model did in past quarters (each replayed by a model trained
only on the history before it), the deals to act on, the open pipeline by band, and how far the
probabilities can be trusted. The page is a Jinja2 template with autoescaping; charts are PNGs
embedded as data URIs, and a few lines of script record that every chart loaded
(`data-charts-loaded`), for the browser test.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import joblib
import numpy as np
import pandas as pd

from dealscore import __version__
from dealscore.features.asof import export_time, last_event
from dealscore.formatting import ago, day, money, pct
from dealscore.io import read_valid
from dealscore.io.scores import open_store, store_exists
from dealscore.io.secrets import redact
from dealscore.io.write import atomic_write, write_text
from dealscore.model.bundle import LoadedModel
from dealscore.model.metrics import reliability_table
from dealscore.pipeline.monitor import ELAPSED, monitor_table, scored_outcomes, state_counts
from dealscore.pipeline.periods import BacktestResult, NoHistoryError, backtest
from dealscore.pipeline.report_tables import (
    attention,
    bands_table,
    deal_lists,
    forward_table,
    history_table,
    open_pipeline,
    quarter_so_far,
)
from dealscore.pipeline.scoring import ScoreSettings
from dealscore.pipeline.training import TrainSettings
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables
from dealscore.tracking import plots
from dealscore.tracking.models import load_model
from dealscore.tracking.pyfunc import PACKAGE_DIR, folder_digest
from dealscore.tracking.registry import champion_uri

TEMPLATES = Path(__file__).with_name("templates")
# The replay's layout: a cache written by another layout is replayed again.
REPLAY_FORMAT = "weekly-1"


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plots.plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def convergence_chart(wide: pd.DataFrame) -> str:
    """Each past quarter's forecast / actual by week: the model's (solid, with its range) and
    the reps' booked + commit (dashed)."""
    fig, ax = plots.plt.subplots(figsize=(9, 4))
    ax.axhspan(0.85, 1.15, color="tab:green", alpha=0.08, label="within 15%")
    ax.axhline(1.0, color="grey", linewidth=1)
    colors = plots.plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (period, rows) in enumerate(wide.groupby("period", sort=False)):
        color = colors[k % len(colors)]
        ratio = rows[["model", "model_low", "model_high"]].div(rows["actual"], axis=0)
        ax.plot(rows["week"], ratio["model"], marker="o", color=color, label=f"{period} model")
        ax.fill_between(
            rows["week"], ratio["model_low"], ratio["model_high"], color=color, alpha=0.1
        )
        if "rep_commit" in rows and rows["rep_commit"].notna().any():
            ax.plot(rows["week"], rows["rep_commit"] / rows["actual"], linestyle="--", color=color)
    ax.set(
        xlabel="weeks into the quarter",
        ylabel="forecast / actual",
        title="Past quarters: the forecast week by week (dashed: reps' booked + commit)",
    )
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return _png(fig)


def reliability_chart(p: np.ndarray, won: np.ndarray) -> str:
    fig = plots.reliability_figure(
        won.astype(int), {"model, won within the quarter": p}, "Reliability, past quarters"
    )
    return _png(fig)


WRITTEN_MONTHS = 6  # the months of written scores the realised reliability chart draws


def written_chart(outcomes: pd.DataFrame) -> str:
    """Realised reliability of the scores written, one line per month scored (the latest
    WRITTEN_MONTHS with elapsed scores) and all of them pooled."""
    done = outcomes[outcomes["state"] == ELAPSED]
    month = done["as_of"].dt.strftime("%Y-%m")
    fig, ax = plots.plt.subplots(figsize=(6, 6))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    lines = [(m, done[month == m]) for m in sorted(month.unique())[-WRITTEN_MONTHS:]]
    for label, rows in [*lines, ("all written scores", done)]:
        table = reliability_table(rows["won"].to_numpy(), rows["win_probability"].to_numpy())
        pooled = label == "all written scores"
        ax.plot(
            table["predicted"],
            table["observed"],
            marker="o",
            linewidth=2.5 if pooled else 1,
            color="black" if pooled else None,
            label=label,
        )
    ax.set(
        xlabel="win probability written",
        ylabel="won within its window",
        xlim=(0, 1),
        ylim=(0, 1),
        title="How the scores we wrote did, by month scored",
    )
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return _png(fig)


def band_chart(bands: pd.DataFrame) -> str:
    fig, ax = plots.plt.subplots(figsize=(6, 3.5))
    ax.bar(bands["band"], bands["deals"], color=["tab:green", "tab:olive", "tab:orange", "tab:red"])
    ax.set(xlabel="band", ylabel="open deals", title="Open pipeline by band")
    fig.tight_layout()
    return _png(fig)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, pct=pct, day=day, ago=ago)
    return env


@dataclass(frozen=True)
class ReportResult:
    path: Path
    backtest: BacktestResult | None
    charts: int
    cached: bool = False


def cache_dir() -> Path:
    """DEALSCORE_CACHE, else $XDG_CACHE_HOME/dealscore, else ~/.cache/dealscore."""
    if folder := os.environ.get("DEALSCORE_CACHE"):
        return Path(folder)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dealscore"


SOURCE = (".py", ".yaml", ".json")


@cache
def code_fingerprint(package: Path = PACKAGE_DIR) -> str:
    """A hash of the source under `package` (dealscore's own): a replay made by other code is
    replayed again, as the version stays the same between releases (a checkout, an editable
    install)."""
    return folder_digest(package, _not_source)[:20]


def _not_source(name: str) -> bool:
    """Byte code and anything but source, which a run leaves beside it or is not code."""
    return "__pycache__" in name.split("/") or not name.endswith(SOURCE)


def cached_backtest(
    tables, periods: int, settings, use_cache: bool, progress: Progress = silent
) -> tuple[BacktestResult | None, str, bool]:
    """(result, why there is none, whether it came from the cache). The replay trains a model
    per quarter, minutes of work: it is kept per export fingerprint, settings, version and
    the code's own fingerprint."""
    key = hashlib.sha256(
        json.dumps(
            [
                tables.fingerprint(),
                periods,
                asdict(settings),
                __version__,
                code_fingerprint(),
                REPLAY_FORMAT,
            ],
            default=str,
        ).encode()
    ).hexdigest()[:20]
    path = cache_dir() / "backtest" / f"{key}.joblib"
    if use_cache and path.is_file():
        try:
            result = joblib.load(path)
            progress(f"past quarters: the replay from the cache ({path})")
            return result, "", True
        except Exception as exc:
            progress(f"the cached replay {path} cannot be read ({exc}); replaying again")
    progress(f"replaying the last {periods} closed quarters (a model trained for each)")
    try:
        result = backtest(tables, periods, settings, progress)
    except NoHistoryError as exc:
        return None, str(exc).removeprefix("backtest: "), False
    if use_cache:
        atomic_write(path, lambda tmp: joblib.dump(result, tmp))
    return result, "", False


def _written(
    scores: str, loaded: LoadedModel, tables: CrmTables, progress: Progress
) -> dict[str, Any]:
    """How the scores this model's name wrote turned out (pipeline.monitor): counts, a row per
    month scored, and the realised reliability chart once some have elapsed."""
    where = redact(scores)
    none = {"where": where, "written": 0, "chart": None}
    if not store_exists(scores):
        return none
    progress(f"reading the scores written to {where}")
    history = open_store(scores).history(loaded.name)
    if history.empty:
        return none
    now = export_time(last_event(tables))
    outcomes = scored_outcomes(history, tables, now, loaded.bundle.horizon_days)
    table = monitor_table(outcomes)
    months = table[table["by"] == "month"]
    counts = state_counts(outcomes)
    waiting = outcomes.loc[outcomes["state"] != ELAPSED, "window_end"]
    return {
        "where": where,
        "written": len(outcomes),
        "first": outcomes["as_of"].min(),
        **counts,
        "next": waiting.min() if len(waiting) else None,
        "pooled": table.iloc[0].to_dict(),
        "months": months.to_dict("records"),
        "chart": written_chart(outcomes) if counts[ELAPSED] else None,
    }


def _recipe(settings, horizon_days: float | None):
    """The training settings for the replay, with the model's own label horizon unless the
    settings fix one: the past quarters are then forecast by the recipe of the model shown."""
    settings = settings or TrainSettings()
    if not settings.horizon_days and horizon_days:
        return replace(settings, horizon_days=horizon_days)
    return settings


def _charts(replay: BacktestResult | None, bands: pd.DataFrame) -> list[tuple[str, str]]:
    charts = []
    if replay is not None:
        charts.append(("Past quarters, forecast week by week", convergence_chart(replay.wide())))
        reliability = reliability_chart(
            replay.deals["p_win_in_period"].to_numpy(), replay.deals["won_in_period"].to_numpy()
        )
        charts.append(("Reliability of the in-quarter probability, past quarters", reliability))
    charts.append(("Open pipeline by band", band_chart(bands)))
    return charts


def run_report(
    data: str | Path,
    out: Path,
    periods: int = 4,
    as_of: pd.Timestamp | None = None,
    model: str = "",
    tracking_uri: str = "",
    mapping: str | Path | None = None,
    settings: TrainSettings | None = None,
    progress: Progress = silent,
    currency: str = "",
    use_cache: bool = True,
    scores_at: str = "",  # where score wrote (default: ScoreSettings.out), for "how they did"
) -> ReportResult:
    """Read, replay past quarters (cached), score the open pipeline, render, write atomically;
    model "": the champion of the export's own CRM."""
    loaded = load_model(model or champion_uri(data), tracking_uri)
    tables = read_valid(data, mapping, progress)
    if mismatch := loaded.mismatch(tables.coverage()):
        progress(f"WARNING: {mismatch}")
    replay, no_history, cached = cached_backtest(
        tables, periods, _recipe(settings, loaded.bundle.horizon_days), use_cache, progress
    )
    now = as_of or export_time(last_event(tables))  # the rule score and compare follow
    progress(f"scoring the open pipeline as of {now:%Y-%m-%d %H:%M} UTC with {loaded.describe()}")
    score_settings = ScoreSettings(track=False)
    scores, features = open_pipeline(tables, loaded, now, score_settings)
    so_far = quarter_so_far(tables, loaded.bundle, now)
    bands = bands_table(scores, score_settings)
    charts = _charts(replay, bands)
    written = _written(scores_at or score_settings.out, loaded, tables, progress)
    page = (
        _environment()
        .get_template("report.html")
        .render(
            now=now,
            model=loaded.describe(),
            horizon=loaded.bundle.horizon_days,
            coverage_warning=mismatch,
            currency=currency,
            **so_far,
            history=history_table(replay),
            no_history=no_history,
            cached=cached,
            lists=deal_lists(scores, tables),
            bands=bands.to_dict("records"),
            open_deals=len(scores),
            open_amount=float(scores["amount"].sum()),
            charts=charts,
            forward=forward_table(loaded.bundle.forward),
            written=written,
            rung=loaded.rung(),
            **attention(scores, features, tables),
        )
    )
    path = write_text(page, Path(out))
    return ReportResult(path, replay, len(charts) + bool(written.get("chart")), cached)
