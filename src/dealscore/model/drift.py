"""Population stability: how far today's features and scores have moved from training's."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

EPSILON = 1e-4  # share floor, so an empty bin does not make the index infinite


@dataclass(frozen=True)
class Reference:
    """Per column: inner bin edges (training quantiles) and the share of training rows per bin,
    with a last bin for missing values."""

    edges: dict[str, np.ndarray] = field(default_factory=dict)
    shares: dict[str, np.ndarray] = field(default_factory=dict)


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


def reference(frame: pd.DataFrame, columns: list[str], bins: int = 10) -> Reference:
    """Quantile bins of each column (fewer where values repeat, cuts between values) and their
    shares in the reference population."""
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
    return Reference(edges, shares)


def bin_counts(ref: Reference, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Rows per reference bin of each column the frame has; counts of parts add up."""
    return {
        column: _counts(frame[column].to_numpy(dtype=float), cuts)
        for column, cuts in ref.edges.items()
        if column in frame
    }


def stability_from_counts(ref: Reference, counts: dict[str, np.ndarray]) -> pd.Series:
    """PSI per column from bin counts (summed over partitions, for a distributed scorer)."""
    out = {}
    for column, counted in counts.items():
        now = np.maximum(counted / max(counted.sum(), 1.0), EPSILON)
        then = np.maximum(ref.shares[column], EPSILON)
        out[column] = float(np.sum((now - then) * np.log(now / then)))
    return pd.Series(out, name="psi", dtype=float)


def population_stability(ref: Reference, frame: pd.DataFrame) -> pd.Series:
    """PSI per column: sum over bins of (now - then) * ln(now / then). Above 0.2: a real shift."""
    return stability_from_counts(ref, bin_counts(ref, frame))


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
