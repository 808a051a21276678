"""A change of the win rate in the last horizon, read from the windows that have not ended yet.

Labelled snapshots stop a horizon H before the cut-off, so a model learns nothing of the last H
days of the business: when the win rate moves, its probabilities lag. Those days are not silent,
though. A deal open e days before the cut-off has had e days to be won, and the labelled rows
say how the wins within H arrive over time: F(e), the share of them that came within e days of
the snapshot. A model that is right about the last horizon expects sum F(e) p of the recent
deals to have been won by now.

When wins arrive depends on two things, and F is read from labelled rows that share both:
- the deal: likely wins come sooner (rows in the same band of predicted probability);
- the calendar: wins bunch up before a quarter ends, so a window holding a quarter's last
  weeks fills early (rows whose snapshot stood as far from its quarter's end, within a week).
A recent snapshot with too few such rows to go by is left out: in a history shorter than a year
the last weeks of this quarter may have no like in the labelled rows, and guessing their F from
other weeks would read the quarter-end rush as a change of the business.

`recent_shift` finds the log-odds shift d that makes the model agree with what happened: the
maximum of the likelihood of "won so far" under P = F(e) sigmoid(logit(p) + d), with a normal
prior of standard deviation `prior_sd` on d (a quiet last horizon, or a few deals, cannot move it
far). A deal open at several recent dates counts at each, but the likelihood is scaled down by
the rows per deal, so it weighs what its deals say, not its rows. (Weighting each deal's rows to
sum to one would not do: how many recent dates a deal is open at depends on when it closes.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from dealscore.model.scorers import logit, sigmoid

BANDS = 5  # bands of predicted probability with their own arrival of wins
PHASE_DAYS = 7  # labelled snapshots this close in the quarter share a recent one's calendar
MIN_WINS = 30  # fewer labelled wins than this to read F from: the band is dropped, then the row
QUARTER_DAYS = 92


@dataclass(frozen=True)
class WinTiming:
    """How the wins within the horizon arrived: per band of predicted probability and day of
    the quarter (days from the snapshot to its quarter's end), the sorted days to the win."""

    edges: np.ndarray  # inner band edges on the predicted probability
    days: dict[tuple[int, int], np.ndarray]  # (band, days to the quarter's end) -> days to win

    def _pool(self, bands: list[int], phase: int) -> np.ndarray:
        near = [(phase + k) % QUARTER_DAYS for k in range(-PHASE_DAYS, PHASE_DAYS + 1)]
        found = [self.days.get((b, q)) for b in bands for q in near]
        return np.sort(np.concatenate([d for d in found if d is not None] or [np.zeros(0)]))

    def share_by(
        self, p: np.ndarray, elapsed_days: np.ndarray, to_quarter_end: np.ndarray
    ) -> np.ndarray:
        """F(e) for each recent snapshot: the share of like labelled wins that came within
        `elapsed_days` of their snapshot; NaN where too few like wins are known."""
        band = np.searchsorted(self.edges, p, side="right")
        phase = np.clip(np.round(to_quarter_end), 0, QUARTER_DAYS - 1).astype(int)
        out = np.full(len(p), np.nan)
        for b, q in set(zip(band.tolist(), phase.tolist(), strict=True)):
            rows = (band == b) & (phase == q)
            days = self._pool([b], q)
            if len(days) < MIN_WINS:
                days = self._pool(list(range(len(self.edges) + 1)), q)
            if len(days) >= MIN_WINS:
                out[rows] = np.searchsorted(days, elapsed_days[rows], side="right") / len(days)
        return out


def win_timing(p_won: np.ndarray, days_to_win: np.ndarray, to_quarter_end: np.ndarray) -> WinTiming:
    """From the labelled rows won within the horizon: their predicted probability (out of
    fold), the days from snapshot to win, and the snapshot's days to its quarter's end."""
    p_won = np.asarray(p_won, dtype=float)
    days = np.asarray(days_to_win, dtype=float)
    phase = np.asarray(to_quarter_end, dtype=float)
    keep = np.isfinite(p_won) & np.isfinite(days) & np.isfinite(phase)
    p_won, days, phase = p_won[keep], days[keep], phase[keep]
    edges = np.quantile(p_won, np.linspace(0, 1, BANDS + 1)[1:-1]) if len(p_won) else np.zeros(0)
    band = np.searchsorted(edges, p_won, side="right")
    day = np.clip(np.round(phase), 0, QUARTER_DAYS - 1).astype(int)
    key = band * QUARTER_DAYS + day
    order = np.lexsort((days, key))  # by cell, then days to win: each cell comes out sorted
    key, days = key[order], days[order]
    starts = np.r_[0, np.flatnonzero(np.diff(key)) + 1]
    cells = np.split(days, starts[1:])
    return WinTiming(
        edges,
        {
            (int(k) // QUARTER_DAYS, int(k) % QUARTER_DAYS): cell
            for k, cell in zip(key[starts], cells, strict=True)
        },
    )


def recent_shift(
    p: np.ndarray,
    elapsed_days: np.ndarray,
    to_quarter_end: np.ndarray,
    won_so_far: np.ndarray,
    deal: np.ndarray,
    timing: WinTiming,
    prior_sd: float = 0.5,
) -> float:
    """The log-odds shift that makes the model's expected wins so far (recent snapshots: the
    model's probability `p`, days since the snapshot, its days to the quarter's end, won yet,
    the deal) agree with what happened; 0 when there is nothing to go by."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(won_so_far, dtype=float)
    share = timing.share_by(p, np.asarray(elapsed_days, dtype=float), np.asarray(to_quarter_end))
    keep = np.isfinite(p) & np.isfinite(share) & (share > 0)
    if not keep.any() or prior_sd <= 0:
        return 0.0
    weight = len(np.unique(np.asarray(deal)[keep])) / keep.sum()  # deals per row, for every row
    base, share, y = logit(p[keep]), share[keep], y[keep]

    def loss(d: float) -> float:
        q = np.clip(share * sigmoid(base + d), 1e-9, 1 - 1e-9)
        ll = (weight * (y * np.log(q) + (1 - y) * np.log(1 - q))).sum()
        return -ll + d * d / (2 * prior_sd**2)

    return float(minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded").x)
