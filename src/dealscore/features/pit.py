"""Point-in-time building blocks: every lookup here sees only rows strictly before as_of.

Times are int64 microseconds since the epoch. Snapshots are (deal code, as_of) pairs; the same
code serves one scoring date (every snapshot has the same as_of) and millions of training
snapshots, without a Python loop per deal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.extensions import take

from dealscore.features import activity_pass
from dealscore.schemas.keys import positions
from dealscore.schemas.tables import Activities

DAY = 86_400_000_000  # microseconds


def micros(values: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 microseconds; NaT becomes the int64 minimum (use `isna` masks)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        # Held as UTC integers already: read them (a copy, never a view of the caller's frame)
        # rather than convert 17M timestamps twice.
        return values.array.as_unit("us").asi8.copy()
    return (
        values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]").astype(np.int64)
    )


def activity_known_at(activities: pd.DataFrame) -> pd.Series:
    """When each activity became known: its created_at (logged or booked), else occurred_at."""
    occurred = activities[Activities.occurred_at]
    if Activities.created_at not in activities:
        return occurred
    return activities[Activities.created_at].fillna(occurred)


def activity_known_micros(activities: pd.DataFrame, occurred: np.ndarray) -> np.ndarray:
    """`activity_known_at` as microseconds, given the activities' occurred_at ones (`micros`):
    filled in place, no third copy of a 17M-row column."""
    if Activities.created_at not in activities:
        return occurred
    created = activities[Activities.created_at]
    known = micros(created)
    unknown = created.isna().to_numpy()
    known[unknown] = occurred[unknown]
    return known


@dataclass(frozen=True)
class Snapshots:
    """The rows to compute features for: deal codes (positions in the deal index) and as_of times."""

    deal: np.ndarray  # int64 code into `ids`
    as_of: np.ndarray  # int64 microseconds
    ids: pd.Index  # opportunity ids, position = code

    def __len__(self) -> int:
        return len(self.deal)

    def codes(self, opportunity_ids: pd.Series) -> np.ndarray:
        """Codes of other tables' opportunity ids; -1 where the deal is unknown."""
        return positions(opportunity_ids, self.ids)


class SortedEvents:
    """Events grouped by key and sorted by time, for sums over a key's events before a time
    (asof_by_key); the engagement features walk each deal's events in activity_pass.py."""

    def __init__(self, deal: np.ndarray, time: np.ndarray, n_deals: int):
        keep = np.flatnonzero(deal >= 0)
        self.n_deals = n_deals
        # One sortable int64 per (deal, time): deal code in the high bits, time rebased to the
        # earliest event in the low bits, coarsened only as far as needed to fit. A coarser
        # bucket can only drop an earlier same-bucket event, never admit a later one.
        kept_time = time[keep]
        self.base = int(kept_time.min()) if len(keep) else 0
        span = (int(kept_time.max()) - self.base + 2) if len(keep) else 2
        self.shift = max(0, span.bit_length() + max(n_deals, 1).bit_length() - 62)
        self.time_bits = span.bit_length() - self.shift
        keys = self._key(deal[keep], kept_time)
        order = np.argsort(keys, kind="stable")
        self._keys, self.deal, self.time = keys[order], deal[keep][order], kept_time[order]
        self.order = keep[order]  # positions in the original rows
        # Offsets of each deal's block: events of deal d are rows starts[d]:starts[d + 1].
        self.starts = np.searchsorted(self.deal, np.arange(self.n_deals + 1))

    def _key(self, deal: np.ndarray, time: np.ndarray) -> np.ndarray:
        rebased = np.clip(time - self.base, 0, None) >> self.shift
        rebased = np.minimum(rebased, (1 << self.time_bits) - 1)
        return (deal.astype(np.int64) << self.time_bits) + rebased

    def position(self, deal: np.ndarray, time: np.ndarray) -> np.ndarray:
        """Index of the first event of `deal` at or after `time` (so events before it are < time)."""
        lo, hi = self.starts[deal], self.starts[deal + 1]
        return np.clip(np.searchsorted(self._keys, self._key(deal, time), side="left"), lo, hi)


def asof_state(
    snapshots: Snapshots, events: pd.DataFrame, time_column: str, columns: list[str]
) -> pd.DataFrame:
    """Each snapshot's latest event row strictly before as_of (NaN where none), by deal code;
    among events at the same time, the last in row order.

    `events` must have a `deal` code column and `time_column` in int64 microseconds.
    """
    # A row dated exactly at as_of is not yet known. Grouped by deal once, then a binary search
    # in each snapshot's own block: a merge_asof by deal sorted both sides of millions of rows.
    time = events[time_column].to_numpy(dtype=np.int64)
    order, starts = activity_pass.group_events(
        events["deal"].to_numpy(dtype=np.int64), time, len(snapshots.ids)
    )
    row = activity_pass.last_before(starts, order, time, snapshots.deal, snapshots.as_of)
    index = pd.RangeIndex(len(snapshots), name="row")
    return pd.DataFrame(
        {c: take(events[c].array, row, allow_fill=True) for c in columns}, index=index
    )


def asof_global(
    as_of: np.ndarray, times: np.ndarray, values: dict[str, np.ndarray]
) -> pd.DataFrame:
    """Cumulative sums of `values` over events strictly before each as_of (events not by deal)."""
    order = np.argsort(times, kind="stable")
    times = times[order]
    pos = np.searchsorted(times, as_of, side="left")
    out = {}
    for name, v in values.items():
        cum = np.concatenate([[0.0], np.cumsum(np.asarray(v, dtype=float)[order])])
        out[name] = cum[pos]
    return pd.DataFrame(out)


def asof_by_key(
    as_of: np.ndarray,
    key: np.ndarray,
    event_times: np.ndarray,
    event_keys: np.ndarray,
    values: dict[str, np.ndarray],
) -> pd.DataFrame:
    """Per-key cumulative sums of `values` over events strictly before each as_of.

    Keys are small non-negative integer codes (a segment, an owner); -1 never matches.
    """
    n_keys = int(max(key.max(initial=-1), event_keys.max(initial=-1))) + 1
    events = SortedEvents(event_keys, event_times, max(n_keys, 1))
    valid = key >= 0
    safe_key = np.where(valid, key, 0)
    pos = events.position(safe_key, as_of)
    start = events.starts[safe_key]
    out = {}
    for name, v in values.items():
        ordered = np.asarray(v, dtype=float)[events.order]
        cum = np.concatenate([[0.0], np.cumsum(ordered)])
        out[name] = np.where(valid, cum[pos] - cum[start], 0.0)
    return pd.DataFrame(out)


def smoothed_rate(
    successes: np.ndarray, trials: np.ndarray, prior: np.ndarray, strength: float
) -> np.ndarray:
    """Empirical-Bayes style shrinkage toward the prior: (s + m p) / (n + m)."""
    return (successes + strength * prior) / (trials + strength)


def quarter_end_micros(times: np.ndarray) -> np.ndarray:
    """Start of the next calendar quarter (the end of each time's quarter), in microseconds."""
    stamps = pd.to_datetime(times, unit="us")
    periods = stamps.to_period("Q")
    return ((periods + 1).start_time.to_numpy("datetime64[us]")).astype(np.int64)
