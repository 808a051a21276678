"""Why a deal scores as it does: per-feature contributions to the raw (log-odds) score.

LightGBM's exact TreeSHAP (`pred_contrib`) costs about 2 ms a row with 500 trees, too slow for a
nightly run over a million deals. dealscore uses *path contributions* (Saabas): walking a tree
from the root to a row's leaf, each split moves the expected output from the parent node's value
to the child's, and that move is credited to the split's feature. The credits are found by
walking the trees, which dealscore does itself in compiled code (`path_contributions`
over the flattened trees of `tree_arrays`): one walk gives every credit and, summed, the raw
score, at about the cost of LightGBM's own prediction.

The decomposition is exact: base + the row's contributions = the raw score. It differs from SHAP
in how credit is shared between features on one path (the split nearer the leaf gets the whole
last step); for reasons in plain words that ranks the same drivers (tests/model/test_reasons.py
checks it against LightGBM's TreeSHAP).

A linear scorer's credits are its terms (coefficient x standardised design value) summed per
feature; `linear_contributions` computes them row by row in compiled code instead of building
the design (a hundred columns of a million rows) first.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import lightgbm as lgb
import numba
import numpy as np

MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
ZERO_THRESHOLD = 1e-35  # LightGBM's kZeroThreshold


@dataclass(frozen=True)
class TreeArrays:
    """The boosted trees as flat node arrays, to walk them in compiled code.

    Node i splits on `feature[i]` at `threshold[i]` (go left if value <= threshold; missing
    values as LightGBM routes them), or is a leaf when `left[i] < 0`. `value[i]` is the node's
    expected raw output (a leaf's value for leaves); `roots[t]` is tree t's first node.
    """

    feature_names: list[str]
    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @property
    def base(self) -> float:
        """The raw score before any split: the sum of the trees' root values."""
        return float(self.value[self.roots].sum())


def tree_arrays(booster: lgb.Booster, num_iteration: int) -> TreeArrays:
    """Flatten the first `num_iteration` trees (numerical splits only, as dealscore trains)."""
    dump = booster.dump_model(num_iteration=num_iteration)
    columns: dict[str, list] = {
        k: [] for k in ("feature", "threshold", "default_left", "missing", "left", "right", "value")
    }
    missing_codes = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
    roots = []

    def add(node: dict) -> int:
        index = len(columns["value"])
        for values in columns.values():
            values.append(0)
        if "leaf_value" in node or "split_feature" not in node:
            columns["value"][index] = float(node.get("leaf_value", 0.0))
            columns["left"][index] = columns["right"][index] = -1
            columns["feature"][index] = -1
            return index
        if node["decision_type"] != "<=":
            raise ValueError(f"categorical splits are not supported: {node['decision_type']}")
        columns["feature"][index] = node["split_feature"]
        columns["threshold"][index] = float(node["threshold"])
        columns["default_left"][index] = bool(node["default_left"])
        columns["missing"][index] = missing_codes[node["missing_type"]]
        columns["value"][index] = float(node["internal_value"])
        columns["left"][index] = add(node["left_child"])
        columns["right"][index] = add(node["right_child"])
        return index

    for tree in dump["tree_info"][:num_iteration]:
        roots.append(add(tree["tree_structure"]))
    dtypes = {"threshold": float, "value": float, "default_left": np.bool_, "missing": np.int8}
    arrays: dict[str, np.ndarray] = {
        k: np.asarray(v, dtype=dtypes.get(k, np.int64)) for k, v in columns.items()
    }
    return TreeArrays(list(dump["feature_names"]), np.asarray(roots, dtype=np.int64), **arrays)


@functools.cache
def _kernels():
    """The compiled loops, compiled on first use (cached on disk by numba)."""

    @numba.njit(parallel=True, cache=True)
    def walk(
        X, roots, feature, threshold, default_left, missing, left, right, value
    ):  # pragma: no cover
        n, width = X.shape
        out = np.zeros((n, width))
        for i in numba.prange(n):
            for t in range(roots.shape[0]):
                node = roots[t]
                while left[node] >= 0:
                    x = X[i, feature[node]]
                    kind = missing[node]
                    if np.isnan(x) and kind != 2:
                        x = 0.0
                    if (kind == 1 and abs(x) <= 1e-35) or (kind == 2 and np.isnan(x)):
                        child = left[node] if default_left[node] else right[node]
                    elif x <= threshold[node]:
                        child = left[node]
                    else:
                        child = right[node]
                    out[i, feature[node]] += value[child] - value[node]
                    node = child
        return out

    @numba.njit(parallel=True, cache=True)
    def top(credits, k):  # pragma: no cover
        n, width = credits.shape
        up = np.full((n, k), -1, dtype=np.int64)
        down = np.full((n, k), -1, dtype=np.int64)
        for i in numba.prange(n):
            for j in range(width):
                v = credits[i, j]
                if v > 0:  # insert into the row's k largest, strongest first
                    slot = k
                    while slot > 0 and (up[i, slot - 1] < 0 or credits[i, up[i, slot - 1]] < v):
                        slot -= 1
                    if slot < k:
                        up[i, slot + 1 :] = up[i, slot:-1].copy()
                        up[i, slot] = j
                elif v < 0:
                    slot = k
                    while slot > 0 and (down[i, slot - 1] < 0 or credits[i, down[i, slot - 1]] > v):
                        slot -= 1
                    if slot < k:
                        down[i, slot + 1 :] = down[i, slot:-1].copy()
                        down[i, slot] = j
        return up, down

    return walk, top


def path_contributions(trees: TreeArrays, X: np.ndarray) -> np.ndarray:
    """(rows, features) credits; `trees.base` plus a row's credits is its raw score."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    return _kernels()[0](
        X,
        trees.roots,
        trees.feature,
        trees.threshold,
        trees.default_left,
        trees.missing,
        trees.left,
        trees.right,
        trees.value,
    )


def top_factors(credits: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the positions of the k largest positive and the k most negative credits,
    strongest first; -1 where fewer than k credits have that sign."""
    k = min(k, credits.shape[1])
    return _kernels()[1](np.ascontiguousarray(credits, dtype=np.float64), k)


# How a linear scorer reads one feature into one design column (model/scorers.py).
NUMERIC, LOGIT, LEVEL, IS_MISSING = 0, 1, 2, 3


@dataclass(frozen=True)
class LinearTerms:
    """A fitted linear scorer's design columns, flattened: each column's source feature, how it
    is read (NUMERIC, LOGIT, LEVEL, IS_MISSING) with its fill or level, its standardisation and
    range, its coefficient, and the feature it is credited to."""

    source: np.ndarray
    kind: np.ndarray
    value: np.ndarray  # the fill of a missing number, or the level a LEVEL column is 1 for
    mean: np.ndarray
    scale: np.ndarray
    low: np.ndarray
    high: np.ndarray
    coef: np.ndarray
    owner: np.ndarray
    width: int  # features credited


@functools.cache
def _linear_kernel():
    """The compiled loop of `linear_contributions`, compiled on first use (cached on disk)."""

    @numba.njit(parallel=True, cache=True)
    def credit(X, source, kind, value, mean, scale, low, high, coef, owner, width, eps):
        n = X.shape[0]
        out = np.zeros((n, width))
        for i in numba.prange(n):
            for c in range(source.shape[0]):
                x = X[i, source[c]]
                missing = np.isnan(x)
                if kind[c] == 3:
                    v = 1.0 if missing else 0.0
                elif kind[c] == 2:
                    v = 1.0 if x == value[c] else 0.0
                elif missing:
                    v = value[c]
                elif kind[c] == 1:
                    p = min(max(x, eps), 1.0 - eps)
                    v = np.log(p / (1.0 - p))
                else:
                    v = np.sign(x) * np.log1p(abs(x))
                z = min(max((v - mean[c]) / scale[c], low[c]), high[c])
                out[i, owner[c]] += z * coef[c]
        return out

    return credit


def linear_contributions(terms: LinearTerms, X: np.ndarray, eps: float) -> np.ndarray:
    """(rows, features) credits of a linear scorer: each design column's standardised value
    (clipped to the fitted range) x its coefficient, summed per feature, one row at a time in
    compiled code without building the design (`eps` clips probabilities read as log-odds)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    t = terms
    return _linear_kernel()(
        X, t.source, t.kind, t.value, t.mean, t.scale, t.low, t.high, t.coef, t.owner, t.width, eps
    )
