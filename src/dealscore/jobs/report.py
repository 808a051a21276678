"""Job: one self-contained HTML page for sales ops, viewable offline.

Forecast vs reps vs actual by period (the backtest), the reliability of the in-period
probability, today's open pipeline by band, the deals most at risk and with most upside (with
their reasons), and pipeline coverage. Charts are PNGs embedded as data URIs; a few lines of
script only record that every chart loaded (`data-charts-loaded`), for the browser test.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dealscore.features.asof import last_event
from dealscore.io import read_valid
from dealscore.jobs.compare import BacktestResult, backtest, period_bounds, period_deals
from dealscore.jobs.score import ScoreSettings, load_model, score_deals
from dealscore.progress import Progress, silent
from dealscore.schemas.tables import Opportunities
from dealscore.tracking import plots

TOP_DEALS = 10


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plots.plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def forecast_chart(table: pd.DataFrame) -> str:
    fig, ax = plots.plt.subplots(figsize=(9, 4))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["actual"] / 1e6, width=0.4, label="actual", color="tab:grey")
    ax.plot(x, table["model"] / 1e6, marker="o", label="model", color="tab:blue")
    ax.plot(x, table["rep_commit"] / 1e6, marker="s", label="rep commit", color="tab:orange")
    ax.plot(x, table["rep_weighted"] / 1e6, marker="^", label="rep weighted", color="tab:red")
    ax.set_xticks(x, table["period"])
    ax.set(ylabel="bookings (millions)", title="Forecast at the period's start vs actual")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _png(fig)


def reliability_chart(p: np.ndarray, won: np.ndarray) -> str:
    fig = plots.reliability_figure(
        won.astype(int), {"model, win within the period": p}, "Reliability, backtest periods"
    )
    return _png(fig)


def band_chart(scores: pd.DataFrame) -> str:
    table = scores.groupby("band").agg(
        deals=("opportunity_id", "size"), expected=("expected_amount", "sum")
    )
    table = table.reindex(list("ABCD"), fill_value=0)
    fig, ax = plots.plt.subplots(figsize=(6, 3.5))
    ax.bar(table.index, table["deals"], color=["tab:green", "tab:olive", "tab:orange", "tab:red"])
    ax.set(xlabel="band", ylabel="open deals", title="Open pipeline by band")
    fig.tight_layout()
    return _png(fig)


def _deal_table(frame: pd.DataFrame, reason_columns: list[str]) -> str:
    rows = []
    for row in frame.itertuples():
        reasons = "; ".join(
            html.escape(str(getattr(row, c)))
            for c in reason_columns
            if isinstance(getattr(row, c), str)
        )
        rows.append(
            f"<tr><td>{html.escape(row.opportunity_id)}</td><td>{row.amount:,.0f}</td>"
            f"<td>{row.win_probability:.0%}</td><td>{'' if np.isnan(row.rep_probability) else f'{row.rep_probability:.0%}'}</td>"
            f"<td>{reasons}</td></tr>"
        )
    head = "<tr><th>deal</th><th>amount</th><th>model</th><th>rep</th><th>why</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _with_amounts(scores: pd.DataFrame, amount: pd.Series) -> pd.DataFrame:
    """The scores with each deal's amount (0 for a deal without one)."""
    return scores.assign(amount=scores["opportunity_id"].map(amount).fillna(0).to_numpy(float))


def _next_step_section(scores: pd.DataFrame, features: pd.DataFrame, amount: pd.Series) -> str:
    """Open deals with nothing booked: the view a sales leader starts a pipeline review with."""
    title = "<h2>No next step booked</h2>"
    steps = features.set_index("opportunity_id")[
        ["next_step_scheduled", "days_since_next_step_lapsed", "days_since_two_way"]
    ]
    deals = _with_amounts(scores, amount).join(steps, on="opportunity_id")
    if deals["next_step_scheduled"].isna().all():
        return (
            f"{title}<p>The export does not say when activities were booked "
            "(<code>activities.created_at</code>), so a meeting on the calendar cannot be told "
            "from one that took place: no next-step view.</p>"
        )
    none = deals[deals["next_step_scheduled"] == 0]
    share = none["amount"].sum() / max(deals["amount"].sum(), 1.0)
    top = none.nlargest(TOP_DEALS, "amount")
    rows = "".join(
        f"<tr><td>{html.escape(str(r.opportunity_id))}</td><td>{r.amount:,.0f}</td>"
        f"<td>{r.win_probability:.0%}</td><td>{_days(r.days_since_two_way)}</td>"
        f"<td>{_days(r.days_since_next_step_lapsed)}</td></tr>"
        for r in top.itertuples()
    )
    head = (
        "<tr><th>deal</th><th>amount</th><th>model</th><th>last two-way contact</th>"
        "<th>last next step passed</th></tr>"
    )
    return (
        f"{title}<p>{len(none):,} of {len(deals):,} open deals ({share:.0%} of the open amount) "
        "have no meeting, call or demo on the calendar. Experienced sales leaders treat these as "
        "dying until someone books the next step. The largest:</p>"
        f'<table class="next-step">{head}{rows}</table>'
    )


def _no_decision_section(scores: pd.DataFrame, amount: pd.Series) -> str:
    """The deals drifting into "no decision": lost to the status quo, not to a competitor."""
    title = "<h2>Drifting into no decision</h2>"
    p = scores["no_decision_probability"]
    if p.isna().all():
        return f"{title}<p>This model was trained without the no-decision model.</p>"
    deals = _with_amounts(scores, amount)
    top = deals.assign(risk=p * deals["amount"]).nlargest(TOP_DEALS, "risk")
    reasons = [f"down_{k}_reason" for k in (1, 2, 3)]
    rows = "".join(
        f"<tr><td>{html.escape(str(r.opportunity_id))}</td><td>{r.amount:,.0f}</td>"
        f"<td>{r.no_decision_probability:.0%}</td><td>{r.lost_probability:.0%}</td>"
        f"<td>{r.win_probability:.0%}</td><td>"
        + "; ".join(html.escape(getattr(r, c)) for c in reasons if isinstance(getattr(r, c), str))
        + "</td></tr>"
        for r in top.itertuples()
    )
    head = (
        "<tr><th>deal</th><th>amount</th><th>no decision</th><th>lost</th><th>won</th>"
        "<th>what holds it back</th></tr>"
    )
    expected = (p * deals["amount"]).sum()
    return (
        f"{title}<p>Of the open amount, the model expects {expected:,.0f} to end in no decision "
        "(closed as such, or still undecided at the model's horizon): buyers who stall need a "
        "reason to act, not a better price. The largest at risk:</p>"
        f'<table class="no-decision">{head}{rows}</table>'
    )


def _days(value: float) -> str:
    """'never', 'today', '1 day ago', '12 days ago'."""
    if np.isnan(value):
        return "never"
    days = round(value)
    return "today" if days == 0 else "1 day ago" if days == 1 else f"{days:,} days ago"


@dataclass(frozen=True)
class ReportResult:
    path: Path
    backtest: BacktestResult
    charts: int


FORWARD_COLUMNS = [
    "date",
    "contender",
    "rows",
    "mean_predicted",
    "actual",
    "ece",
    "roc_auc",
    "brier",
]


def _forward_section(forward: pd.DataFrame | None, horizon_days: float | None) -> str:
    """The champion's forward test: what its probabilities were worth on deals really open."""
    title = "<h2>How honest the probabilities are (forward test)</h2>"
    if forward is None or forward.empty:
        return f"{title}<p>This model was trained without a forward test.</p>"
    meaning = f"P(won within {horizon_days:g} days of the as-of date)" if horizon_days else "P(won)"
    table = forward[[c for c in FORWARD_COLUMNS if c in forward]]
    return (
        f"{title}<p>Each probability is {html.escape(meaning)}. At each past date a model "
        "trained only on the export as it stood then scored every deal open then; the outcomes "
        "came later. Mean predicted against actual and the calibration error (ECE) are what "
        "these scores are worth, beside the reps' forecast and the CRM stage probability on "
        "the same deals.</p>"
        + table.to_html(
            index=False,
            float_format=lambda v: f"{v:,.3f}",
            formatters={"rows": "{:,.0f}".format},
            classes="forward",
        )
    )


def run_report(
    data: str | Path,
    out: Path,
    periods: int = 4,
    as_of: pd.Timestamp | None = None,
    model: str = "models:/dealscore@champion",
    tracking_uri: str = "",
    mapping: str | Path | None = None,
    settings=None,
    progress: Progress = silent,
) -> ReportResult:
    loaded = load_model(model, tracking_uri)
    tables = read_valid(data, mapping, progress)
    progress(f"backtesting the last {periods} closed periods")
    replay = backtest(tables, periods, settings, progress)
    now = as_of or last_event(tables)
    progress(f"scoring the open pipeline as of {now:%Y-%m-%d}")
    scores, _, features = score_deals(tables, loaded, now, ScoreSettings(track=False))
    deals = tables.opportunities.set_index(Opportunities.opportunity_id)
    amounts = deals.get(Opportunities.amount, pd.Series(np.nan, index=deals.index))
    quarter = str(pd.Period(now.tz_convert("UTC").tz_localize(None), freq="Q"))
    current = period_deals(
        tables,
        loaded.bundle.estimator,
        loaded.bundle.feature_state,
        loaded.bundle.feature_names,
        quarter,
        now,
        loaded.bundle.in_quarter,
    )
    scored = current.merge(scores, on="opportunity_id", how="inner")
    gap = scored["rep_probability"].fillna(scored["win_probability"]) - scored["win_probability"]
    at_risk = scored.assign(gap=gap * scored["amount"]).nlargest(TOP_DEALS, "gap")
    upside = scored.assign(gap=-gap * scored["amount"]).nlargest(TOP_DEALS, "gap")
    _, end = period_bounds(quarter)
    pipeline = current["amount"].sum()
    expected = (current["amount"] * current["p_win_in_period"]).sum()
    coverage = pipeline / expected if expected > 0 else float("nan")
    history_rows = replay.deals  # each period's deals, scored by its own backtest model
    charts = [
        ("Forecast vs reps vs actual", forecast_chart(replay.table)),
        (
            "Reliability of the in-period probability (backtest deals)",
            reliability_chart(
                history_rows["p_win_in_period"].to_numpy(), history_rows["won_in_period"].to_numpy()
            ),
        ),
        ("Open pipeline by band", band_chart(scores)),
    ]
    table = replay.table[
        ["period", "deals", "actual", "model", "rep_commit", "rep_commit_best_case", "rep_weighted"]
    ]
    closer = replay.closer()
    figures = "".join(
        f'<figure><img alt="{html.escape(title)}" src="{src}"><figcaption>{html.escape(title)}</figcaption></figure>'
        for title, src in charts
    )
    honesty = _forward_section(
        getattr(loaded.bundle, "forward", None), getattr(loaded.bundle, "horizon_days", None)
    )
    reasons_down = [f"down_{k}_reason" for k in (1, 2, 3)]
    reasons_up = [f"up_{k}_reason" for k in (1, 2, 3)]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dealscore report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:last-child{{text-align:left}}
figure{{display:inline-block;margin:1em}}img{{max-width:100%}}</style></head>
<body data-charts="{len(charts)}">
<h1>dealscore: forecast report</h1>
<p>Open pipeline as of {now:%Y-%m-%d %H:%M} UTC, model {html.escape(loaded.name)} v{html.escape(loaded.version)}.</p>
<h2>Forecast vs reps vs actual</h2>
{table.to_html(index=False, float_format=lambda v: f"{v:,.0f}")}
<p>The model's forecast was closer than rep commit in {closer["rep_commit"]:.0%} of periods,
than commit plus best case in {closer["rep_commit_best_case"]:.0%}, than the rep-weighted sum in {closer["rep_weighted"]:.0%}.
Each period is forecast at its start by a model trained only on the history before it.</p>
{figures}
{honesty}
<h2>Pipeline coverage, {quarter}</h2>
<p>{len(current):,} open deals due this quarter, {pipeline:,.0f} of pipeline; the model expects
{expected:,.0f} to close won by {end:%Y-%m-%d}: coverage {coverage:.1f}x.</p>
<h2>Most at risk (rep above model, by amount)</h2>
{_deal_table(at_risk, reasons_down)}
<h2>Most upside (model above rep, by amount)</h2>
{_deal_table(upside, reasons_up)}
{_next_step_section(scores, features, amounts)}
{_no_decision_section(scores, amounts)}
<script>
const imgs = [...document.images];
const done = () => {{ document.body.dataset.chartsLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length; }};
imgs.forEach(i => i.addEventListener("load", done));
done();
</script>
</body></html>
"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page)
    tmp.replace(out)
    return ReportResult(out, replay, len(charts))
