"""Calibrated probabilities and their reasons, a chunk of rows at a time: what scoring makes of
the model's output for each open deal."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.features.forecast import REP_INPUTS
from dealscore.features.sentences import sentences
from dealscore.model.bundle import ModelBundle
from dealscore.model.reasons import top_factors
from dealscore.progress import Progress, silent
from dealscore.schemas.scores import FACTOR_COLUMNS, FACTORS, factor_columns

NONE = np.array(None, dtype=object)  # a fill value NumPy's type stubs accept
CHUNK = 100_000  # rows scored at once: bounded memory for a million deals


def _factor_frame(
    credits: np.ndarray, values: np.ndarray, names: np.ndarray, bundle: ModelBundle, rep: bool
) -> dict[str, np.ndarray]:
    if not rep:  # the rep's inputs still count in the score, just not as its reasons
        credits = np.where(np.isin(names, list(REP_INPUTS)), 0.0, credits)
    up, down = top_factors(credits, FACTORS)
    stage = names.tolist().index("stage_rank") if "stage_rank" in names else None
    stage_rank = values[:, stage] if stage is not None else None
    stage_names = {rank: name for name, rank in bundle.feature_state.stage_order.items()}
    rows = np.arange(len(credits))
    out: dict[str, np.ndarray] = {}
    slots = [
        (d, picks[:, r], r) for d, picks in (("up", up), ("down", down)) for r in range(FACTORS)
    ]
    for direction, pick, rank in slots:
        has = pick >= 0
        safe = np.where(has, pick, 0)
        f_col, c_col, _ = factor_columns(direction, rank + 1)
        out[f_col] = np.where(has, names[safe].astype(object), NONE)
        out[c_col] = np.where(has, credits[rows, safe], np.nan)
    # One call for all six factors: the per-template work is done once, not once per factor.
    picked = np.concatenate(
        [np.where(p >= 0, values[rows, np.maximum(p, 0)], np.nan) for _, p, _ in slots]
    )
    reasons = sentences(
        np.concatenate([out[factor_columns(d, r + 1)[0]] for d, _, r in slots]),
        picked,
        None if stage_rank is None else np.tile(stage_rank, len(slots)),
        stage_names,
        bundle.won_profile,
    )
    for k, (direction, _, rank) in enumerate(slots):
        out[factor_columns(direction, rank + 1)[2]] = reasons[k * len(rows) : (k + 1) * len(rows)]
    return out


def explain(
    bundle: ModelBundle,
    X: pd.DataFrame,
    chunk: int = CHUNK,
    progress: Progress = silent,
    rep_reasons: bool = False,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Calibrated probabilities and the factor columns, a chunk of rows at a time (bounded
    memory for a million deals); the rep's own forecast is a reason only with rep_reasons."""
    estimator = bundle.estimator
    names = np.asarray(bundle.feature_names)
    if X.empty:
        return np.empty(0), {name: np.empty(0, dtype=object) for name in FACTOR_COLUMNS}
    probabilities, parts = [], []
    for start in range(0, max(len(X), 1), chunk):
        part = X.iloc[start : start + chunk]
        # One pass gives the reasons and, summed, the raw score (model/scorers.py).
        credits = estimator.contributions(part)
        probabilities.append(estimator.calibrate(estimator.base_ + credits.sum(axis=1)))
        parts.append(_factor_frame(credits, part.to_numpy(dtype=float), names, bundle, rep_reasons))
        if len(X) > chunk:
            done = min(start + chunk, len(X))
            progress(f"scored and explained {done:,} of {len(X):,} deals ({done / len(X):.0%})")
    factors = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    return np.concatenate(probabilities), factors


def no_decision(model, X: pd.DataFrame, chunk: int = CHUNK) -> np.ndarray:
    """P(no decision) per row, a chunk at a time: a linear model's design of a million rows
    would hold gigabytes at once."""
    if X.empty:
        return np.empty(0)
    parts = [model.predict_proba(X.iloc[s : s + chunk])[:, 1] for s in range(0, len(X), chunk)]
    return np.concatenate(parts)
