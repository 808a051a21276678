"""The report's tables: what the page shows of this quarter, the past quarters, the deals to
act on and the open pipeline, computed from frames and a model (no file, no clock), and the
formatting people read them in (dealscore.formatting)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dealscore.formatting import money
from dealscore.model.bundle import LoadedModel, ModelBundle
from dealscore.pipeline.moves import deal_moves
from dealscore.pipeline.periods import (
    BacktestResult,
    deal_labels,
    open_deals,
    period_bounds,
    rep_calls,
)
from dealscore.pipeline.quarter import RANGE_WORDS, QuarterNumber, quarter_number, quarter_of
from dealscore.pipeline.scoring import ScoreSettings, score_deals
from dealscore.schemas import CrmTables
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID
from dealscore.schemas.tables import Opportunities

TOP_DEALS = 10
FORECAST_NAMES = {
    "model": "model",
    "rep_commit": "reps: booked + commit",
    "rep_commit_best_case": "reps: booked + commit + best case",
}


def quarter_table(number: QuarterNumber) -> dict:
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


def history_table(replay: BacktestResult | None) -> dict | None:
    """The past quarters replayed: the forecasts' accuracy week by week, and each quarter's
    first-week call against what was won."""
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


def deal_rows(frame: pd.DataFrame, tables, reasons: list[str]) -> list[dict]:
    """A row per deal: its labels, amount, the model's and the rep's probabilities, and why."""
    labels = deal_labels(tables, frame[OPPORTUNITY_ID].reset_index(drop=True))
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


def bands_table(scores: pd.DataFrame, settings: ScoreSettings) -> pd.DataFrame:
    """The open deals, their amount and expected amount per band, with what each band means."""
    edges = (settings.band_a, settings.band_b, settings.band_c)
    meaning = {
        "A": f"{edges[0]:.0%} or more",
        "B": f"{edges[1]:.0%} to {edges[0]:.0%}",
        "C": f"{edges[2]:.0%} to {edges[1]:.0%}",
        "D": f"below {edges[2]:.0%}",
    }
    table = scores.groupby("band").agg(
        deals=(OPPORTUNITY_ID, "size"),
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


def forward_table(forward: pd.DataFrame | None) -> dict | None:
    """The model's forward check as the page's table; None without one."""
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


DOWN = [f"down_{k}_reason" for k in (1, 2, 3)]
UP = [f"up_{k}_reason" for k in (1, 2, 3)]


def open_pipeline(
    tables: CrmTables, loaded: LoadedModel, now: pd.Timestamp, settings: ScoreSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores with each deal's amount and rep probability, features) of the deals open now."""
    scores, _, features = score_deals(tables, loaded, now, settings, scored_at=now)
    deals = tables.opportunities.set_index(Opportunities.opportunity_id)
    amounts = deals.get(Opportunities.amount, pd.Series(np.nan, index=deals.index))
    _, rep_p = rep_calls(tables, features[[OPPORTUNITY_ID, AS_OF]])
    rep = pd.Series(rep_p, index=features[OPPORTUNITY_ID].to_numpy())
    ids = scores[OPPORTUNITY_ID]
    scores = scores.assign(
        amount=ids.map(amounts).fillna(0.0).to_numpy(float),
        rep_probability=ids.map(rep).to_numpy(float),
    )
    return scores, features


def deal_lists(scores: pd.DataFrame, tables: CrmTables) -> list[dict[str, Any]]:
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
                "rows": deal_rows(largest.nlargest(TOP_DEALS, "stake"), tables, DOWN),
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
            "rows": deal_rows(at_risk, tables, DOWN),
        },
        {
            "title": "Most upside: the model furthest above the rep's call",
            "lead": "Ordered by (model's probability - rep's) x amount: deals the rep may "
            "be underselling.",
            "stake": "upside",
            "rows": deal_rows(upside, tables, UP),
        },
    ]


def attention(scores: pd.DataFrame, features: pd.DataFrame, tables: CrmTables) -> dict[str, Any]:
    """The deals with no next step booked, and those drifting into no decision."""
    steps = features.set_index(OPPORTUNITY_ID)[
        ["next_step_scheduled", "days_since_next_step_lapsed", "days_since_two_way"]
    ]
    stepped = scores.join(steps, on=OPPORTUNITY_ID)
    no_step = stepped[stepped["next_step_scheduled"] == 0]
    known = bool(scores["no_decision_probability"].notna().any())
    drifting = scores.assign(risk=scores["no_decision_probability"] * scores["amount"])
    return {
        "next_steps_known": bool(stepped["next_step_scheduled"].notna().any()),
        "no_step": len(no_step),
        "no_step_share": no_step["amount"].sum() / max(scores["amount"].sum(), 1.0),
        "no_step_rows": deal_rows(no_step.nlargest(TOP_DEALS, "amount"), tables, []),
        "no_decision_known": known,
        "no_decision_expected": float(drifting["risk"].sum()) if known else 0.0,
        "no_decision_rows": deal_rows(drifting.nlargest(TOP_DEALS, "risk"), tables, DOWN)
        if known
        else [],
    }


def quarter_so_far(tables: CrmTables, bundle: ModelBundle, now: pd.Timestamp) -> dict[str, Any]:
    """This quarter as of now: its bounds and days, the numbers so far, and the week's moves."""
    quarter = str(quarter_of(now))
    start, end = period_bounds(quarter)
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
    return {
        "quarter": quarter,
        "start": start,
        "end": end,
        "elapsed": (now - start).days + 1,
        "length": (end - start).days,
        "this_quarter": quarter_table(number),
        "moves": moves.summary() if moves is not None else None,
    }
