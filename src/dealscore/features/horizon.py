"""Winning within a period is not winning ever: deals slip. How late do won deals close?

From history strictly before as_of: each stage-history row says when the deal was then expected
to close; for a deal won before as_of, its actual close minus that date is a slip. Deals still
open at as_of have not closed yet, so their slip is only known to be at least as_of minus the
expected date: they are right-censored, and leaving them out would keep just the quick wins
(long, slipping deals are the ones still open). A Kaplan-Meier estimate uses both; an open deal
counts with the weight of history's win rate (the chance it is a future win), and every deal
counts once however many rows it has. P(a deal won closes by the period's end) is then the
estimated share of slips smaller than the room between its expected close and the period's end,
among rows whose expectation lay about as far ahead as the deal's does now.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.features.pit import DAY, micros
from dealscore.schemas.tables import CrmTables, Opportunities, StageHistory, Status

MIN_SLIPS = 30  # fewer won deals with a dated expectation than this: no history to go by
LEAD_EDGES = np.array([15.0, 45.0, 90.0])  # days ahead the close was expected: 4 buckets


def won_slips(tables: CrmTables, before: int) -> pd.DataFrame:
    """Per stage-history row with an expected close, of deals won before `before` or open
    then (microseconds): slip or censoring time (days), whether the slip is observed, the lead
    (how far ahead the close was expected) and the row's weight."""
    empty = pd.DataFrame({"slip": [], "observed": [], "lead": [], "weight": []}, dtype=float)
    history = tables.stage_history
    if history is None or StageHistory.close_date not in history:
        return empty
    deals = tables.opportunities.set_index(Opportunities.opportunity_id)
    closed = deals[Opportunities.closed_at]
    closed_us = pd.Series(
        np.where(closed.notna(), micros(closed.fillna(pd.Timestamp(0, tz="UTC"))), np.inf),
        index=deals.index,
    )
    won = deals[Opportunities.status] == Status.WON
    won_before = won & (closed_us < before)
    open_then = (micros(deals[Opportunities.created_at]) < before) & (closed_us >= before)
    resolved = closed_us < before
    win_rate = won_before.sum() / max(resolved.sum(), 1)
    rows = history[
        history[StageHistory.close_date].notna()
        & (micros(history[StageHistory.changed_at]) < before)
    ]
    ids = rows[StageHistory.opportunity_id]
    # isin, not map: mapping no ids (no row before `before`) keeps the ids' string dtype.
    kept = ids.isin(won_before.index[won_before | open_then]).to_numpy()
    rows, ids = rows[kept], ids[kept]
    observed = ids.map(won_before).to_numpy(dtype=bool)
    changed = micros(rows[StageHistory.changed_at])
    expected = micros(rows[StageHistory.close_date])
    end = np.where(observed, ids.map(closed_us).to_numpy(dtype=float), float(before))
    per_deal = ids.map(ids.value_counts()).to_numpy(dtype=float)
    frame = pd.DataFrame(
        {
            "slip": (end - expected) / DAY,
            "observed": observed,
            "lead": (expected - changed) / DAY,
            "weight": np.where(observed, 1.0, win_rate) / per_deal,
        }
    )
    # A won deal's closing row "expects" the close itself: no information about slipping.
    return frame[~observed | (changed < end)].reset_index(drop=True)


def _share_before(slips: pd.DataFrame, room: np.ndarray) -> np.ndarray:
    """Kaplan-Meier P(slip < room) from observed and censored slips."""
    order = np.argsort(slips["slip"].to_numpy(), kind="stable")
    time = slips["slip"].to_numpy()[order]
    weight = slips["weight"].to_numpy()[order]
    event = slips["observed"].to_numpy()[order] * weight
    at_risk = weight[::-1].cumsum()[::-1]  # weight with slip >= each time
    survival = np.cumprod(
        1.0 - np.divide(event, at_risk, out=np.zeros_like(event), where=at_risk > 0)
    )
    position = np.searchsorted(time, room, side="left")  # events strictly before room
    return np.where(position > 0, 1.0 - survival[np.maximum(position - 1, 0)], 0.0)


def close_by(
    history: pd.DataFrame, expected_close: np.ndarray, period_end: int, as_of: int
) -> np.ndarray:
    """P(closes before `period_end` | won), per deal, from its expected close (microseconds,
    NaN where unknown) and history's slips at a similar lead; 1 where history is too thin."""
    room = (period_end - expected_close) / DAY
    bucket = np.searchsorted(LEAD_EDGES, (expected_close - as_of) / DAY)
    past_bucket = np.searchsorted(LEAD_EDGES, history["lead"].to_numpy())
    out = np.where(np.isnan(expected_close), np.nan, 1.0)
    for b in range(len(LEAD_EDGES) + 1):
        here = (bucket == b) & ~np.isnan(expected_close)
        same = history[past_bucket == b]
        pool = same if same["observed"].sum() >= MIN_SLIPS else history
        if here.any() and pool["observed"].sum() >= MIN_SLIPS:
            out[here] = _share_before(pool, room[here])
    return out
