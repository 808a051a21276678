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
from pathlib import Path
from typing import Any

import jinja2
import joblib
import numpy as np
import pandas as pd

from dealscore import __version__
from dealscore.features.asof import export_time, last_event
from dealscore.io import read_valid
from dealscore.io.scores import open_store, store_exists
from dealscore.io.secrets import redact
from dealscore.io.write import atomic_write, write_text
from dealscore.model.bundle import LoadedModel
from dealscore.model.metrics import reliability_table
from dealscore.pipeline.monitor import ELAPSED, monitor_table, scored_outcomes, state_counts
from dealscore.pipeline.moves import deal_moves
from dealscore.pipeline.periods import (
    BacktestResult,
    NoHistoryError,
    backtest,
    deal_labels,
    open_deals,
    period_bounds,
    rep_calls,
)
from dealscore.pipeline.quarter import RANGE_WORDS, QuarterNumber, quarter_number, quarter_of
from dealscore.pipeline.scoring import ScoreSettings, score_deals
from dealscore.pipeline.training import TrainSettings
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables
from dealscore.schemas.tables import Opportunities
from dealscore.tracking import plots
from dealscore.tracking.models import load_model
from dealscore.tracking.registry import champion_uri

TOP_DEALS = 10
TEMPLATES = Path(__file__).with_name("templates")
FORECAST_NAMES = {
    "model": "model",
    "rep_commit": "reps: booked + commit",
    "rep_commit_best_case": "reps: booked + commit + best case",
}
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


# Formatting: what people read. Amounts to three significant figures with k/M, shares as whole
# percents, and a dash, never "nan", where there is nothing to show.
def money(value: float, currency: str = "") -> str:
    if value is None or not np.isfinite(value):
        return "–"
    sign, value = ("-" if value < 0 else ""), abs(float(value))
    if value >= 1e6:
        text = f"{value / 1e6:.3g}M"
    elif value >= 1e3:
        text = f"{value / 1e3:.3g}k"
    else:
        text = f"{value:.0f}"
    return f"{sign}{currency + ' ' if currency else ''}{text}"


def pct(value: float | None, signed: bool = False) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    if signed:
        return "0%" if round(value * 100) == 0 else f"{value:+.0%}"
    return f"{value:.0%}"


def day(value: pd.Timestamp | None) -> str:
    return "–" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d}"


def _days(value: float) -> str:
    """'never', 'today', '1 day ago', '12 days ago'."""
    if np.isnan(value):
        return "never"
    days = round(value)
    return "today" if days == 0 else "1 day ago" if days == 1 else f"{days:,} days ago"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, pct=pct, day=day, ago=_days)
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


def cached_backtest(
    tables, periods: int, settings, use_cache: bool, progress: Progress = silent
) -> tuple[BacktestResult | None, str, bool]:
    """(result, why there is none, whether it came from the cache). The replay trains a model
    per quarter, minutes of work: it is kept per export fingerprint, settings and version."""
    key = hashlib.sha256(
        json.dumps(
            [tables.fingerprint(), periods, asdict(settings), __version__, REPLAY_FORMAT],
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


def _quarter(number: QuarterNumber) -> dict:
    """This quarter so far: booked, and the quarter's total as the model and the reps call it."""
    has_reps = bool(np.isfinite(number.rep_commit))
    rows = [
        {
            "name": "model",
            "open": number.open,
            "new": number.new,
            "total": number.model,
            "range": f"{money(number.low)} to {money(number.high)}",
        }
    ]
    if has_reps:
        rows += [
            {
                "name": FORECAST_NAMES[name],
                "open": value - number.booked,
                "new": None,
                "total": value,
                "range": "",
            }
            for name, value in (
                ("rep_commit", number.rep_commit),
                ("rep_commit_best_case", number.rep_commit_best_case),
            )
        ]
    return {
        "booked": number.booked,
        "booked_deals": number.booked_deals,
        "open_deals": number.open_deals,
        "rows": rows,
        "has_reps": has_reps,
        "notes": number.notes,
        "range_words": RANGE_WORDS,
        "new_from": ", ".join(number.new_history["period"]),
    }


def _history(replay: BacktestResult | None) -> dict | None:
    if replay is None:
        return None
    wide = replay.wide()
    accuracy = replay.accuracy()
    has_reps = "rep_commit" in accuracy["forecast"].to_numpy()
    shown = [f for f in FORECAST_NAMES if f in accuracy["forecast"].to_numpy()]
    weeks = []
    for week, at in accuracy.groupby("week"):
        by = at.set_index("forecast")
        model = by.loc["model"]
        weeks.append(
            {
                "week": int(week),
                "cells": [
                    (by.loc[f, "accuracy_ratio"], by.loc[f, "abs_pct_error"], by.loc[f, "bias"])
                    for f in shown
                ],
                "in_range": int(model["in_range"]),
                "closer": int(by.loc["rep_commit", "model_closer"]) if has_reps else None,
                "quarters": int(model["quarters"]),
            }
        )
    first = wide[wide["week"] == wide["week"].min()]
    rows = [
        {
            "period": row["period"],
            "actual": row["actual"],
            "parts": [row["booked"], row["model_open"], row["model_new"]],
            "forecasts": [(row[f], row[f] / row["actual"] - 1) for f in shown],
        }
        for _, row in first.iterrows()
    ]
    return {
        "names": [FORECAST_NAMES[f] for f in shown],
        "weeks": weeks,
        "first_week": int(first["week"].iloc[0]),
        "rows": rows,
        "periods": int(wide["period"].nunique()),
        "skipped": replay.skipped,
    }


def _deal_rows(frame: pd.DataFrame, tables, reasons: list[str]) -> list[dict]:
    labels = deal_labels(tables, frame["opportunity_id"].reset_index(drop=True))
    rows = []
    for (_, deal), (_, label) in zip(
        frame.reset_index(drop=True).iterrows(), labels.iterrows(), strict=True
    ):
        rows.append(
            {
                **{k: (None if pd.isna(v) else v) for k, v in label.items()},
                "amount": deal["amount"],
                "model": deal["win_probability"],
                "rep": deal.get("rep_probability", np.nan),
                "stake": deal.get("stake", np.nan),
                "why": [deal[c] for c in reasons if isinstance(deal.get(c), str)],
                **{
                    k: deal[k]
                    for k in deal.index
                    if k.startswith("days_") or k.endswith("_probability")
                },
            }
        )
    return rows


def _bands(scores: pd.DataFrame, settings: ScoreSettings) -> pd.DataFrame:
    edges = (settings.band_a, settings.band_b, settings.band_c)
    meaning = {
        "A": f"{edges[0]:.0%} or more",
        "B": f"{edges[1]:.0%} to {edges[0]:.0%}",
        "C": f"{edges[2]:.0%} to {edges[1]:.0%}",
        "D": f"below {edges[2]:.0%}",
    }
    table = scores.groupby("band").agg(
        deals=("opportunity_id", "size"),
        amount=("amount", "sum"),
        expected=("expected_amount", "sum"),
    )
    table = table.reindex(list("ABCD"), fill_value=0).rename_axis("band").reset_index()
    return table.assign(meaning=table["band"].map(meaning))


FORWARD_COLUMNS = {
    "date": "date",
    "contender": "forecast",
    "rows": "deals",
    "mean_predicted": "mean predicted",
    "actual": "won",
    "ece": "calibration error (ECE)",
    "roc_auc": "ROC AUC",
    "brier": "Brier",
}


def _forward(forward: pd.DataFrame | None) -> dict | None:
    if forward is None or forward.empty:
        return None
    table = forward[[c for c in FORWARD_COLUMNS if c in forward]]
    return {
        "columns": [FORWARD_COLUMNS[c] for c in table],
        "rows": [
            [
                f"{v:,.0f}" if c == "rows" else f"{v:.3f}" if isinstance(v, float) else str(v)
                for c, v in row.items()
            ]
            for _, row in table.iterrows()
        ],
    }


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


DOWN = [f"down_{k}_reason" for k in (1, 2, 3)]
UP = [f"up_{k}_reason" for k in (1, 2, 3)]


def _open_pipeline(
    tables: CrmTables, loaded: LoadedModel, now: pd.Timestamp, settings: ScoreSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores with each deal's amount and rep probability, features) of the deals open now."""
    scores, _, features = score_deals(tables, loaded, now, settings, scored_at=now)
    deals = tables.opportunities.set_index(Opportunities.opportunity_id)
    amounts = deals.get(Opportunities.amount, pd.Series(np.nan, index=deals.index))
    _, rep_p = rep_calls(tables, features[["opportunity_id", "as_of"]])
    rep = pd.Series(rep_p, index=features["opportunity_id"].to_numpy())
    ids = scores["opportunity_id"]
    scores = scores.assign(
        amount=ids.map(amounts).fillna(0.0).to_numpy(float),
        rep_probability=ids.map(rep).to_numpy(float),
    )
    return scores, features


def _deal_lists(scores: pd.DataFrame, tables: CrmTables) -> list[dict[str, Any]]:
    """The deals to act on: where the rep's call and the model's differ most, by amount; without
    rep forecasts, the largest amounts the model doubts."""
    if not scores["rep_probability"].notna().any():
        largest = scores.assign(stake=(1 - scores["win_probability"]) * scores["amount"])
        return [
            {
                "title": "Largest amounts the model doubts",
                "lead": "The export has no rep forecasts to set the model against; ordered by "
                "the amount the model does not expect to win, (1 - probability) x amount.",
                "stake": "doubted",
                "rep": False,
                "rows": _deal_rows(largest.nlargest(TOP_DEALS, "stake"), tables, DOWN),
            }
        ]
    gap = (scores["rep_probability"] - scores["win_probability"]) * scores["amount"]
    at_risk = scores.assign(stake=gap).query("stake > 0").nlargest(TOP_DEALS, "stake")
    upside = scores.assign(stake=-gap).query("stake > 0").nlargest(TOP_DEALS, "stake")
    return [
        {
            "title": "Most at risk: the rep's call furthest above the model",
            "lead": "Ordered by the amount at stake, (rep's probability - model's) x amount: "
            "where the call most overstates what the model expects.",
            "stake": "at stake",
            "rows": _deal_rows(at_risk, tables, DOWN),
        },
        {
            "title": "Most upside: the model furthest above the rep's call",
            "lead": "Ordered by (model's probability - rep's) x amount: deals the rep may "
            "be underselling.",
            "stake": "upside",
            "rows": _deal_rows(upside, tables, UP),
        },
    ]


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


def _attention(scores: pd.DataFrame, features: pd.DataFrame, tables: CrmTables) -> dict[str, Any]:
    """The deals with no next step booked, and those drifting into no decision."""
    steps = features.set_index("opportunity_id")[
        ["next_step_scheduled", "days_since_next_step_lapsed", "days_since_two_way"]
    ]
    stepped = scores.join(steps, on="opportunity_id")
    no_step = stepped[stepped["next_step_scheduled"] == 0]
    known = bool(scores["no_decision_probability"].notna().any())
    drifting = scores.assign(risk=scores["no_decision_probability"] * scores["amount"])
    return {
        "next_steps_known": bool(stepped["next_step_scheduled"].notna().any()),
        "no_step": len(no_step),
        "no_step_share": no_step["amount"].sum() / max(scores["amount"].sum(), 1.0),
        "no_step_rows": _deal_rows(no_step.nlargest(TOP_DEALS, "amount"), tables, []),
        "no_decision_known": known,
        "no_decision_expected": float(drifting["risk"].sum()) if known else 0.0,
        "no_decision_rows": _deal_rows(drifting.nlargest(TOP_DEALS, "risk"), tables, DOWN)
        if known
        else [],
    }


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
    scores, features = _open_pipeline(tables, loaded, now, score_settings)
    quarter = str(quarter_of(now))
    start, end = period_bounds(quarter)
    bundle = loaded.bundle
    every = open_deals(
        tables,
        bundle.estimator,
        bundle.feature_state,
        bundle.feature_names,
        quarter,
        now,
        bundle.in_quarter,
    )
    number = quarter_number(tables, now, every, bundle.in_quarter_error)
    moves = deal_moves(
        tables,
        bundle.estimator,
        bundle.feature_state,
        bundle.feature_names,
        start,
        end,
        now - pd.Timedelta(days=7),
        now,
    )
    bands = _bands(scores, score_settings)
    charts = _charts(replay, bands)
    written = _written(scores_at or score_settings.out, loaded, tables, progress)
    page = (
        _environment()
        .get_template("report.html")
        .render(
            now=now,
            model=loaded.describe(),
            horizon=bundle.horizon_days,
            coverage_warning=mismatch,
            currency=currency,
            quarter=quarter,
            start=start,
            end=end,
            elapsed=(now - start).days + 1,
            length=(end - start).days,
            this_quarter=_quarter(number),
            moves=moves.summary() if moves is not None else None,
            history=_history(replay),
            no_history=no_history,
            cached=cached,
            lists=_deal_lists(scores, tables),
            bands=bands.to_dict("records"),
            open_deals=len(scores),
            open_amount=float(scores["amount"].sum()),
            charts=charts,
            forward=_forward(bundle.forward),
            written=written,
            rung=loaded.rung(),
            **_attention(scores, features, tables),
        )
    )
    path = write_text(page, Path(out))
    return ReportResult(path, replay, len(charts) + bool(written.get("chart")), cached)
