"""The reasons behind a score: each open deal's calibrated probability with the factors that
raised and lowered it in a seller's words, a chunk of rows at a time, and why a deal's score
moved between two dates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from dealscore.explain.sentences import sentence_codes, sentences
from dealscore.features.build import FeatureState
from dealscore.features.forecast import REP_INPUTS
from dealscore.model.bundle import ModelBundle
from dealscore.model.estimator import WinProbabilityModel
from dealscore.model.reasons import top_factors
from dealscore.progress import Progress, silent
from dealscore.schemas.scores import FACTOR_COLUMNS, FACTORS, factor_columns

NONE = np.array(None, dtype=object)  # a fill value NumPy's type stubs accept
TEXT = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas 3's default str
CHUNK = 100_000  # rows scored at once: bounded memory for a million deals
CHANGE_FACTORS = 2  # the factors named in a change reason


def _dictionary(texts: np.ndarray) -> pa.Array:
    """The distinct texts as Arrow, for `_text` to take from."""
    return pa.array(np.asarray(texts, dtype=object), type=pa.large_string())


def _text(codes: np.ndarray, dictionary: pa.Array) -> pa.Array:
    """Each row's text, `dictionary[code]`, missing where the code is -1; taken in Arrow."""
    return dictionary.take(pa.array(codes, mask=codes < 0))


def _factor_frame(
    credits: np.ndarray, values: np.ndarray, names: np.ndarray, bundle: ModelBundle, rep: bool
) -> dict[str, np.ndarray | pa.Array]:
    """The factor columns of a chunk of rows: numbers as NumPy, text as Arrow."""
    if not rep:  # the rep's inputs still count in the score, just not as its reasons
        credits = np.where(np.isin(names, list(REP_INPUTS)), 0.0, credits)
    up, down = top_factors(credits, FACTORS)
    stage = names.tolist().index("stage_rank") if "stage_rank" in names else None
    stage_rank = values[:, stage] if stage is not None else None
    stage_names = {rank: name for name, rank in bundle.feature_state.stage_order.items()}
    rows = np.arange(len(credits))
    out: dict[str, np.ndarray | pa.Array] = {}
    slots = [
        (d, picks[:, r], r) for d, picks in (("up", up), ("down", down)) for r in range(FACTORS)
    ]
    feature_names = _dictionary(names)
    for direction, pick, rank in slots:
        f_col, c_col, _ = factor_columns(direction, rank + 1)
        out[f_col] = _text(pick, feature_names)
        out[c_col] = np.where(pick >= 0, credits[rows, np.maximum(pick, 0)], np.nan)
    # One call for all six factors: the per-template work is done once, not once per factor.
    picks = np.concatenate([p for _, p, _ in slots])
    codes, texts = sentence_codes(
        picks,
        names,
        np.concatenate([values[rows, np.maximum(p, 0)] for _, p, _ in slots]),
        None if stage_rank is None else np.tile(stage_rank, len(slots)),
        stage_names,
        bundle.won_profile,
    )
    said = _dictionary(texts)
    for k, (direction, _, rank) in enumerate(slots):
        part = codes[k * len(rows) : (k + 1) * len(rows)]
        out[factor_columns(direction, rank + 1)[2]] = _text(part, said)
    return out


def _joined(pieces: list[np.ndarray | pa.Array]) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """One column from its chunks: text as pandas' Arrow-backed str, numbers as NumPy."""
    if isinstance(pieces[0], pa.Array):
        return pd.arrays.ArrowStringArray(pa.chunked_array(pieces), dtype=TEXT)
    return np.concatenate(pieces)


def explain(
    bundle: ModelBundle,
    X: pd.DataFrame,
    chunk: int = CHUNK,
    progress: Progress = silent,
    rep_reasons: bool = False,
) -> tuple[np.ndarray, dict[str, np.ndarray | pd.api.extensions.ExtensionArray]]:
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
    factors = {name: _joined([p[name] for p in parts]) for name in parts[0]}
    return np.concatenate(probabilities), factors


def change_reasons(
    estimator: WinProbabilityModel,
    names: list[str],
    then: pd.DataFrame,
    now: pd.DataFrame,
    state: FeatureState,
    k: int = CHANGE_FACTORS,
    hidden: frozenset[str] = frozenset(),
) -> np.ndarray:
    """Per deal (rows of `then` and `now` aligned), the factors whose credit carried its score
    furthest the way it moved between the two dates, said as they stand now ("up: 4 activities
    in the last 90 days; ..."); a `hidden` input still moves the score but is never named."""
    if then.empty:
        return np.empty(0, dtype=object)
    delta = estimator.contributions(now[names]) - estimator.contributions(then[names])
    # What carried the move, not what resisted it: a rising score is explained by what rose.
    push = delta * np.sign(delta.sum(axis=1, keepdims=True))
    push[:, np.isin(names, list(hidden))] = 0.0
    order = np.argsort(-push, axis=1, kind="stable")[:, :k]
    rows = np.arange(len(delta))[:, None]
    feature = np.asarray(names, dtype=object)[order]
    value = now[names].to_numpy(dtype=float)[rows, order]
    moved = push[rows, order] > 1e-9
    stage_names = {rank: name for name, rank in state.stage_order.items()}
    stage = now["stage_rank"].to_numpy(dtype=float) if "stage_rank" in now else None
    chosen = feature.copy()
    chosen[~moved] = None  # no sentence for a factor that did not move
    said = sentences(
        chosen.ravel(),
        value.ravel(),
        None if stage is None else np.repeat(stage, k),
        stage_names,
    ).reshape(-1, k)
    signs = np.where(delta[rows, order] > 0, "up: ", "down: ")
    parts = np.where(moved, np.char.add(signs, said.astype(str)), "")
    text = parts[:, 0]
    for j in range(1, k):  # a factor's column at a time, every deal at once
        part = parts[:, j]
        text = np.where(
            part == "", text, np.where(text == "", part, np.char.add(np.char.add(text, "; "), part))
        )
    return np.where(text == "", "nothing changed", text).astype(object)
