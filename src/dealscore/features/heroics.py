"""Heroic wins: won deals that a rule flags as last-minute rescues, not a pattern to learn.

A heroic win was outside the documented ICP, took a deep discount shortly before it closed and
had been expected to close in an earlier quarter. Such deals teach a model that poor-fit,
stalled deals win; training can down-weight them (docs/training.md). Unlike features, the rule
looks at a closed deal's whole history: it labels training rows, it never feeds a prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dealscore.features.icp import IcpRule, rule_scores
from dealscore.features.pit import DAY, micros, quarter_end_micros
from dealscore.schemas.keys import positions
from dealscore.schemas.tables import CrmTables, Opportunities, StageHistory, Status


@dataclass(frozen=True)
class HeroicsRule:
    """Thresholds of the heroic-win rule; every signal that the data can show must hold."""

    max_icp_score: float = 0.5  # weighted share of ICP rules matched, below which: outside
    min_discount: float = 0.2  # final amount at least this far below its earlier peak...
    discount_window_days: float = 30.0  # ...where the peak stood until this long before the close


def _quarter(times: pd.Series) -> np.ndarray:
    """Each time's calendar quarter, as the instant it ends (pit.quarter_end_micros); NaN where
    there is no time."""
    known = times.notna().to_numpy()
    out = np.full(len(times), np.nan)
    out[known] = quarter_end_micros(micros(times[known]))
    return out


def heroic_signals(
    tables: CrmTables, rules: tuple[IcpRule, ...], rule: HeroicsRule = HeroicsRule()
) -> pd.DataFrame:
    """Per won deal (positions of opportunities), each signal as 1.0 / 0.0, NaN where unknown."""
    deals = tables.opportunities
    n = len(deals)
    won = (deals[Opportunities.status] == Status.WON).to_numpy()
    signals = pd.DataFrame(
        {
            "outside_icp": np.where(
                np.isnan(score := rule_scores(tables, rules)),
                np.nan,
                (score < rule.max_icp_score).astype(float),
            ),
            "late_discount": np.full(n, np.nan),
            "pushed_over_quarter": np.full(n, np.nan),
        }
    )
    history = tables.stage_history
    if history is not None and len(history):
        code = positions(history[StageHistory.opportunity_id], deals[Opportunities.opportunity_id])
        if StageHistory.amount in history and Opportunities.amount in deals:
            signals["late_discount"] = _late_discount(history, deals, code, rule)
        if StageHistory.close_date in history:
            signals["pushed_over_quarter"] = _pushed_over_quarter(history, deals, code)
    return signals.where(np.repeat(won[:, None], signals.shape[1], axis=1), np.nan)


def heroic_wins(
    tables: CrmTables, rules: tuple[IcpRule, ...], rule: HeroicsRule = HeroicsRule()
) -> np.ndarray:
    """True for won deals where every signal the data can show holds (and at least two can)."""
    signals = heroic_signals(tables, rules, rule)
    shown = signals.notna().sum(axis=1)
    held = (signals == 1.0).sum(axis=1)
    return ((shown >= 2) & (held == shown)).to_numpy()


def _late_discount(
    history: pd.DataFrame,
    deals: pd.DataFrame,
    code: np.ndarray,
    rule: HeroicsRule,
) -> np.ndarray:
    """1.0 where a deal closed at least `min_discount` below its peak amount before the last
    `discount_window_days`; NaN where no amount was recorded then."""
    n = len(deals)
    closed = deals[Opportunities.closed_at]
    closed_us = np.where(closed.notna(), micros(closed), 0)
    changed = micros(history[StageHistory.changed_at])
    early = (code >= 0) & (
        changed < closed_us[np.maximum(code, 0)] - rule.discount_window_days * DAY
    )
    peak = (
        pd.Series(history[StageHistory.amount].to_numpy(dtype=float)[early])
        .groupby(code[early])
        .max()
        .reindex(range(n))
        .to_numpy()
    )
    final = deals[Opportunities.amount].to_numpy(dtype=float)
    cut = 1.0 - final / np.where(peak > 0, peak, np.nan)
    return np.where(np.isnan(cut), np.nan, (cut >= rule.min_discount).astype(float))


def _pushed_over_quarter(
    history: pd.DataFrame, deals: pd.DataFrame, code: np.ndarray
) -> np.ndarray:
    """1.0 where a deal closed in a later quarter than the earliest close date it was given."""
    expected = history[StageHistory.close_date]
    seen = (code >= 0) & expected.notna().to_numpy()
    earliest = (
        pd.Series(_quarter(expected[seen])).groupby(code[seen]).min().reindex(range(len(deals)))
    ).to_numpy()
    actual = _quarter(deals[Opportunities.closed_at])
    return np.where(np.isnan(earliest), np.nan, (earliest < actual).astype(float))
