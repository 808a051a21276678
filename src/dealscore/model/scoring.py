"""What a score row says besides its reasons: the band and the trend."""

from __future__ import annotations

import numpy as np

from dealscore.schemas.scores import Band, Trend

DEFAULT_BANDS = (0.7, 0.4, 0.15)  # lower edges of A, B and C; D below


def bands(p: np.ndarray, edges: tuple[float, float, float] = DEFAULT_BANDS) -> np.ndarray:
    """A to D by probability: A at or above edges[0], B above edges[1], C above edges[2]."""
    if not edges[0] > edges[1] > edges[2]:
        raise ValueError(f"band edges must decrease (A > B > C), got {edges}")
    labels = np.array([Band.D, Band.C, Band.B, Band.A], dtype=object)
    return labels[np.searchsorted(np.array(edges[::-1]), p, side="right")]


def trends(
    current: np.ndarray,
    previous: np.ndarray,
    steady: float = 0.05,
    same_model: np.ndarray | None = None,
) -> np.ndarray:
    """improving / declining when the probability moved more than `steady`, else steady;
    new where there is no previous score; model_changed where the previous score came from
    another model version (a move then measures the model, not the deal)."""
    delta = current - previous
    out = np.where(
        delta > steady, Trend.IMPROVING, np.where(delta < -steady, Trend.DECLINING, Trend.STEADY)
    )
    if same_model is not None:
        out = np.where(np.asarray(same_model, dtype=bool), out, Trend.MODEL_CHANGED)
    return np.where(np.isnan(previous), Trend.NEW, out).astype(object)
