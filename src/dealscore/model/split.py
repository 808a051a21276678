"""Purged time folds for cross-fitting: every labelled snapshot is held out once, by date.

The labelled snapshots are cut into K blocks of consecutive dates holding about equal rows. A
block's rows are predicted by models fitted on the other rows whose label windows do not overlap
its own: rows whose window [as_of, as_of + H) ends after the block starts are purged before it,
and rows dated less than H after its last date are embargoed after it. So no outcome is seen
both by a model and by what judges it, and every labelled row gets an out-of-fold prediction
(a short history is used whole, not burnt a horizon at each of three slice boundaries).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dealscore.features.pit import DAY, micros


@dataclass(frozen=True)
class TimeFolds:
    """K blocks of snapshot dates and, for each, the rows a model held out from it may learn from."""

    block: np.ndarray  # per row, its block: 0 the oldest dates, k - 1 the newest; -1 left out
    train: tuple[np.ndarray, ...]  # per block, positions of the rows whose windows miss it
    starts: tuple[pd.Timestamp, ...]  # per block, its first snapshot date
    horizon_days: float
    # Blocks of whole deals rather than of dates (deal_folds): none is newer than another.
    by_deal: bool = False

    @property
    def k(self) -> int:
        return len(self.train)

    def held_out(self, fold: int) -> np.ndarray:
        """Positions of the rows of block `fold`."""
        return np.flatnonzero(self.block == fold)

    def splits(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(train positions, held-out positions) per block, oldest first."""
        for fold in range(self.k):
            yield self.train[fold], self.held_out(fold)

    def recency(self) -> np.ndarray:
        """Per row, its block's weight when out-of-fold scores are calibrated and compared:
        1/k for the oldest block up to 1 for the newest. What comes next resembles the newest
        blocks most, and the oldest is predicted from later rows only. 1 for every row where
        the blocks are of deals."""
        if self.by_deal:
            return np.ones(len(self.block))
        return (self.block + 1) / self.k

    def newest(self) -> np.ndarray:
        """Positions of the newest block: predicted by models that saw only older rows (none
        where the blocks are of deals)."""
        if self.by_deal:
            return np.empty(0, dtype=np.int64)
        return self.held_out(self.k - 1)

    def sample(self, keep: np.ndarray) -> TimeFolds:
        """The same blocks, cross-fitting only the rows where `keep` holds: the others are
        neither held out nor learned from (block -1), and get no out-of-fold prediction."""
        keep = np.asarray(keep, dtype=bool)
        train = tuple(t[keep[t]] for t in self.train)
        block = np.where(keep, self.block, -1)
        return TimeFolds(block, train, self.starts, self.horizon_days, self.by_deal)

    def subset(self, mask: np.ndarray) -> TimeFolds:
        """The same blocks over the rows where `mask` holds (positions renumbered)."""
        mask = np.asarray(mask, dtype=bool)
        position = np.cumsum(mask) - 1
        train = tuple(position[t[mask[t]]] for t in self.train)
        return TimeFolds(self.block[mask], train, self.starts, self.horizon_days, self.by_deal)


def time_folds(as_of: pd.Series, horizon_days: float, k: int = 5) -> TimeFolds:
    """K blocks of consecutive snapshot dates with about equal rows (a date is never split;
    fewer blocks when there are fewer dates), each with its purged and embargoed training rows."""
    times = micros(pd.Series(pd.to_datetime(as_of, utc=True)))
    if len(times) == 0:
        raise ValueError("no labelled snapshots to cut into time folds")
    dates, inverse, counts = np.unique(times, return_inverse=True, return_counts=True)
    k = max(1, min(k, len(dates)))
    # A date's block: where the middle of its rows falls among all rows, in k equal parts.
    middle = (np.cumsum(counts) - counts / 2) / len(times)
    date_block = np.minimum((middle * k).astype(np.int64), k - 1)
    # Blocks left empty by a heavy date are dropped and the rest renumbered.
    _, date_block = np.unique(date_block, return_inverse=True)
    block = date_block[inverse]
    k = int(date_block.max()) + 1
    horizon = round(horizon_days * DAY)
    first = np.array([dates[date_block == b].min() for b in range(k)])
    last = np.array([dates[date_block == b].max() for b in range(k)])
    train = tuple(
        np.flatnonzero((times + horizon <= first[b]) | (times >= last[b] + horizon))
        for b in range(k)
    )
    starts = tuple(pd.Timestamp(int(t), unit="us", tz="UTC") for t in first)
    return TimeFolds(block, train, starts, horizon_days)


def deal_folds(
    groups: pd.Series, as_of: pd.Series, horizon_days: float, k: int = 5, seed: int = 0
) -> TimeFolds:
    """K blocks of whole deals drawn at random, each held out once and predicted by models
    fitted on the others. For snapshots whose dates lie in one quarter: there blocks of dates
    are blocks of the days left in it, and a model held out from one would extrapolate the
    days left from the others. Nothing is purged: the rows of one quarter share its fate,
    which no fold of one quarter can hold out."""
    ids, inverse = np.unique(np.asarray(groups), return_inverse=True)
    k = max(1, min(k, len(ids)))
    block = (np.random.default_rng(seed).permutation(len(ids)) % k)[inverse]
    train = tuple(np.flatnonzero(block != b) for b in range(k))
    times = pd.Series(pd.to_datetime(as_of, utc=True).to_numpy())
    starts = tuple(pd.Timestamp(times[block == b].min()) for b in range(k))
    return TimeFolds(block, train, starts, horizon_days, by_deal=True)


def deal_sample(groups: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """Per row, whether its deal is in a random sample of whole deals holding at most
    `max_rows` rows (every row when they fit). Chosen by deal id only, never by outcome or date."""
    ids, inverse, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    if counts.sum() <= max_rows:
        return np.ones(len(inverse), dtype=bool)
    order = np.random.default_rng(seed).permutation(len(ids))
    chosen = np.zeros(len(ids), dtype=bool)
    chosen[order[np.cumsum(counts[order]) <= max_rows]] = True
    return chosen[inverse]
