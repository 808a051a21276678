"""How people read numbers, one way everywhere: amounts as "14.5k" or "1.23M" (the reasons, the
report), shares as whole percents, dates as YYYY-MM-DD, and a dash, never "nan", where there is
nothing to show. No currency unless given: an export's amounts are in its corporate currency."""

from __future__ import annotations

import numpy as np
import pandas as pd

NOTHING = "–"
UNITS = ((1e3, "k"), (1e6, "M"), (1e9, "B"))  # each applies from its floor up


def money_texts(amounts: pd.Series) -> pd.Series:
    """Amounts as people say them: 14,500 -> "14.5k", 1,230,000 -> "1.23M", 830 -> "830"."""
    amounts = amounts.clip(upper=1e15)  # the contract's largest amount is 1e13
    out = amounts.round().astype("Int64").astype(str).astype(object)
    # Rounded to three figures first, so 999,500 reads "1M", not "1e+03k".
    value = amounts.to_numpy(dtype=float)
    scale = 10.0 ** (np.floor(np.log10(np.where(value > 0, value, 1.0))) - 2)
    shown = pd.Series(np.where(value >= UNITS[0][0], np.round(value / scale) * scale, value))
    for floor, unit in UNITS:
        at = (shown >= floor).to_numpy()
        if at.any():
            out[at] = (shown[at] / floor).map("{:.3g}".format).to_numpy() + unit
    return out


def money(value: float | None, currency: str = "") -> str:
    """One amount as `money_texts` says it, signed, after the currency if given."""
    if value is None or not np.isfinite(value):
        return NOTHING
    sign, text = ("-" if value < 0 else ""), money_texts(pd.Series([abs(float(value))])).iloc[0]
    return f"{sign}{currency + ' ' if currency else ''}{text}"


def pct(value: float | None, signed: bool = False) -> str:
    """A share as a whole percent, with its sign (+5%) if asked."""
    if value is None or not np.isfinite(value):
        return NOTHING
    if signed:
        return "0%" if round(value * 100) == 0 else f"{value:+.0%}"
    return f"{value:.0%}"


def day(value: pd.Timestamp | None) -> str:
    """A date as YYYY-MM-DD."""
    return NOTHING if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d}"


def ago(value: float) -> str:
    """'never', 'today', '1 day ago', '12 days ago'."""
    if np.isnan(value):
        return "never"
    days = round(value)
    return "today" if days == 0 else "1 day ago" if days == 1 else f"{days:,} days ago"
