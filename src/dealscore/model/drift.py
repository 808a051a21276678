"""Population stability: how far today's open deals and scores have moved from training's.

The PSI series covers every input and segment (for the MLflow log). A warning needs more:
- an input whose values keep their meaning as the date moves on. Left out (`DRIFT_UNCOMPARED`):
  statistics of past outcomes recomputed at each as_of, counts that grow with the calendar, and
  inputs that follow the week or the quarter. The rep's call is compared over the deals that
  have one (`DRIFT_PRESENT_ONLY`): how many new deals have none yet depends on the weekday.
- or the segment membership of the open deals (industry, size band, region, product, lead
  source; `features.icp.segment_values`): what the learned segment values stand for;
- and a PSI above both `psi_warning` and what chance alone gives for as many deals now and at
  training (`chance_threshold`): a 60-deal pipeline moves by 0.3 without any change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import chi2

from dealscore.features.build import DRIFT_PRESENT_ONLY, DRIFT_UNCOMPARED

EPSILON = 1e-4  # share floor without a reference size, so an empty bin is not infinite
# Deals' worth added to every bin on both sides: a bin one small sample leaves empty must not
# count as a near-infinite log ratio (the index stays close to its chi-square approximation).
PSEUDO_COUNT = 0.5
# Chance that a run with nothing changed warns at all, shared over the inputs it checks: a
# nightly scoring runs about 365 times a year, so about once in three years by chance alone.
FALSE_ALARM = 0.001
MISSING = "(missing)"  # a segment's label for deals without a value
SEGMENT = "segment."  # prefix of a segment's PSI in the series


@dataclass(frozen=True)
class Reference:
    """Per column: inner bin edges (training quantiles) and the share of training rows per bin,
    with a last bin for missing values; per segment, the share of rows per value."""

    edges: dict[str, np.ndarray] = field(default_factory=dict)
    shares: dict[str, np.ndarray] = field(default_factory=dict)
    rows: int = 0  # deals in the reference; 0: a bundle saved before it was kept
    categories: dict[str, dict[str, float]] = field(default_factory=dict)


def _categories(ref: Reference) -> dict[str, dict[str, float]]:
    """The reference's segment shares; none in a bundle saved before they were kept."""
    return getattr(ref, "categories", {})


def _rows(ref: Reference) -> int:
    return int(getattr(ref, "rows", 0))


def _counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    missing = np.isnan(values)
    counts = np.bincount(
        np.searchsorted(edges, values[~missing], side="right"), minlength=len(edges) + 1
    )
    return np.append(counts, missing.sum()).astype(float)


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return _counts(values, edges) / max(len(values), 1)


def _between(cuts: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Each cut moved to the middle of the gap between the values around it: a feature with a
    few values (a segment's win rate) that moves a hair must not jump a whole bin."""
    values = np.unique(present)
    above = np.searchsorted(values, cuts, side="right")
    # A cut at the lowest or highest value has no gap on one side: it would only make an empty
    # bin that the next day's slightly lower (or higher) value lands in. Dropped.
    inside = (above > 0) & (above < len(values)) & (cuts > values[0])
    return np.unique((values[above[inside] - 1] + values[above[inside]]) / 2)


def category_counts(segments: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Rows per value of each column (missing ones under MISSING); counts of parts add up."""
    return {column: _value_counts(segments[column]) for column in segments.columns}


def _value_counts(values: pd.Series) -> dict[str, float]:
    """Rows per value as text, the missing ones under MISSING; counted in the column's own
    dtype (as Python objects, a million deals' segments took half a second)."""
    counts: dict[str, float] = {}
    for value, n in values.value_counts(dropna=False).items():
        if n:  # a categorical's unused categories
            key = MISSING if pd.isna(value) else str(value)
            counts[key] = counts.get(key, 0.0) + float(n)
    return counts


def reference(
    frame: pd.DataFrame, columns: list[str], bins: int = 10, segments: pd.DataFrame | None = None
) -> Reference:
    """Quantile bins of each column (fewer where values repeat, cuts between values) and their
    shares in the reference population; the share of each segment value (rows aligned)."""
    edges, shares = {}, {}
    for column in columns:
        values = frame[column].to_numpy(dtype=float)
        present = values[~np.isnan(values)]
        cuts = (
            _between(np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])), present)
            if len(present)
            else np.empty(0)
        )
        edges[column] = cuts
        shares[column] = _shares(values, cuts)
    segments = segments if segments is not None else pd.DataFrame()
    categories = {
        column: {value: n / max(len(segments), 1) for value, n in counted.items()}
        for column, counted in category_counts(segments).items()
    }
    return Reference(edges, shares, len(frame), categories)


def bin_counts(ref: Reference, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Rows per reference bin of each column the frame has; counts of parts add up."""
    return {
        column: _counts(frame[column].to_numpy(dtype=float), cuts)
        for column, cuts in ref.edges.items()
        if column in frame
    }


def _smoothed(counts: np.ndarray, then: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(now, then) shares with PSEUDO_COUNT deals added to every bin on both sides; without
    the reference's size, its shares floored at EPSILON as before it was kept."""
    now = (counts + PSEUDO_COUNT) / (counts.sum() + PSEUDO_COUNT * len(counts))
    if rows:
        return now, (then * rows + PSEUDO_COUNT) / (rows + PSEUDO_COUNT * len(then))
    return now, np.maximum(then, EPSILON)


def _index(now: np.ndarray, then: np.ndarray) -> float:
    return float(np.sum((now - then) * np.log(now / then)))


def _aligned(ref: Reference, column: str, counted: dict[str, float]) -> pd.DataFrame:
    """Counts now and shares then of a segment's values, over the values seen either time."""
    then = pd.Series(_categories(ref)[column], dtype=float)
    both = pd.DataFrame({"now": pd.Series(counted, dtype=float), "then": then}).fillna(0.0)
    return both.sort_index()


def stability_from_counts(
    ref: Reference,
    counts: dict[str, np.ndarray],
    categories: dict[str, dict[str, float]] | None = None,
) -> pd.Series:
    """PSI per column from bin counts (summed over partitions, for a distributed scorer), and
    per segment ("segment.<name>") from value counts, where the reference has the segment."""
    rows = _rows(ref)
    out = {
        column: _index(*_smoothed(counted, ref.shares[column], rows))
        for column, counted in counts.items()
    }
    for column, counted in (categories or {}).items():
        if column in _categories(ref):
            both = _aligned(ref, column, counted)
            out[SEGMENT + column] = _index(
                *_smoothed(both["now"].to_numpy(), both["then"].to_numpy(), rows)
            )
    return pd.Series(out, name="psi", dtype=float)


def population_stability(ref: Reference, frame: pd.DataFrame) -> pd.Series:
    """PSI per column: sum over bins of (now - then) * ln(now / then). Above 0.2: a real shift
    on large samples (`chance_threshold` for small ones)."""
    return stability_from_counts(ref, bin_counts(ref, frame))


def chance_threshold(bins: int, rows_then: int, rows_now: float, tests: int = 1) -> float:
    """The PSI chance alone exceeds with probability FALSE_ALARM / tests when nothing moved:
    PSI is then about chi-square(bins - 1) * (1/rows_then + 1/rows_now). rows_then 0: unknown,
    left out. No rows now: infinite, there is nothing to compare."""
    if rows_now <= 0:
        return float("inf")
    scale = (1.0 / rows_then if rows_then else 0.0) + 1.0 / rows_now
    return float(chi2.ppf(1.0 - FALSE_ALARM / max(tests, 1), max(bins - 1, 1)) * scale)


def _share(x: float) -> str:
    """A share in whole percent, with "<1%" for a few deals that would round to none."""
    return "<1%" if 0 < x < 0.005 else f"{x:.0%}"


def _bin_words(edges: np.ndarray, b: int) -> str:
    """A reference bin in words: 'is missing', 'is below 3', 'is between 3 and 7', ..."""
    if b == len(edges) + 1:
        return "is missing"
    if not len(edges):
        return "has a value"
    if b == 0:
        return f"is below {edges[0]:.3g}"
    if b == len(edges):
        return f"is {edges[-1]:.3g} or more"
    return f"is between {edges[b - 1]:.3g} and {edges[b]:.3g}"


@dataclass(frozen=True)
class _Moved:
    """One checked input or segment: its PSI, the threshold, and the sentence saying what moved."""

    psi: float
    threshold: float
    sentence: str


def _compare(now: np.ndarray, then: np.ndarray, rows: int, tests: int) -> tuple[float, float, int]:
    """(PSI, chance threshold, the bin that moved the index most) of counts now against the
    shares then, over the bins either side has."""
    now_s, then_s = _smoothed(now, then, rows)
    parts = (now_s - then_s) * np.log(now_s / then_s)
    seen = int(((now > 0) | (then > 0)).sum())
    return float(parts.sum()), chance_threshold(seen, rows, now.sum(), tests), int(np.argmax(parts))


def _moved_column(ref: Reference, column: str, counted: np.ndarray, tests: int) -> _Moved:
    then, rows = ref.shares[column], _rows(ref)
    present = then[:-1].sum()
    # Over the deals with a value (the last bin: none), unless one side has none at all: a feed
    # that appeared or stopped is a change.
    if column in DRIFT_PRESENT_ONLY and present > 0 and counted[:-1].sum() > 0:
        counted = np.append(counted[:-1], 0.0)
        then = np.append(then[:-1] / present, 0.0)
        rows = round(rows * present)
    psi, threshold, b = _compare(counted, then, rows, tests)
    share = counted[b] / max(counted.sum(), 1.0)
    return _Moved(
        psi,
        threshold,
        f"{column} {_bin_words(ref.edges[column], b)} on {_share(share)} of open deals, "
        f"{_share(then[b])} at training",
    )


def _moved_segment(ref: Reference, column: str, counted: dict[str, float], tests: int) -> _Moved:
    both = _aligned(ref, column, counted)
    now, then = both["now"].to_numpy(), both["then"].to_numpy()
    psi, threshold, b = _compare(now, then, _rows(ref), tests)
    value = str(both.index[b])
    named = "without a value" if value == MISSING else repr(value)
    return _Moved(
        psi,
        threshold,
        f"{column} {named} is on {_share(now[b] / max(now.sum(), 1.0))} of open deals, "
        f"{_share(then[b])} at training",
    )


def drift_warnings(
    ref: Reference,
    counts: dict[str, np.ndarray],
    categories: dict[str, dict[str, float]],
    psi_warning: float,
) -> tuple[str, ...]:
    """One sentence per input or segment whose PSI is above both psi_warning and what chance
    gives for these numbers of deals (`chance_threshold`, FALSE_ALARM shared over everything
    checked), the largest move first. Inputs in DRIFT_UNCOMPARED are left out: their values
    change with the date in a world that does not."""
    columns = {c: n for c, n in counts.items() if c not in DRIFT_UNCOMPARED and c in ref.shares}
    segments = {c: n for c, n in categories.items() if c in _categories(ref)}
    tests = len(columns) + len(segments)
    moved = [_moved_column(ref, c, n, tests) for c, n in columns.items()] + [
        _moved_segment(ref, c, n, tests) for c, n in segments.items()
    ]
    above = [m for m in moved if m.psi > max(psi_warning, m.threshold)]
    above.sort(key=lambda m: m.psi / max(psi_warning, m.threshold), reverse=True)
    return tuple(
        f"{m.sentence} (PSI {m.psi:.2f}, above "
        + (
            f"the {m.threshold:.2f} chance allows for these numbers of deals)."
            if m.threshold > psi_warning
            else f"psi_warning {psi_warning:g})."
        )
        for m in above
    )


def assess(
    ref: Reference,
    counts: dict[str, np.ndarray],
    categories: dict[str, dict[str, float]],
    psi_warning: float,
) -> tuple[pd.Series, tuple[str, ...]]:
    """(PSI of every input and segment, the drift warnings) from counts summed over all open
    deals: the last step of both engines."""
    return stability_from_counts(ref, counts, categories), drift_warnings(
        ref, counts, categories, psi_warning
    )


MIN_SHARED = 50  # fewer deals scored both times: too few to say the distribution moved


def shift_since_previous(current: np.ndarray, previous: np.ndarray) -> float | None:
    """PSI of this run's probabilities against the previous run's, over the deals scored both
    times (NaN previous: new deals, left out); None with fewer than MIN_SHARED such deals.
    The same deals a week on move a little; a new model or a broken feed moves them all."""
    both = ~np.isnan(previous) & ~np.isnan(current)
    if both.sum() < MIN_SHARED:
        return None
    ref = reference(pd.DataFrame({"p": previous[both]}), ["p"])
    return float(population_stability(ref, pd.DataFrame({"p": current[both]}))["p"])
