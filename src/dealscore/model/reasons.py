"""Why a deal scores as it does: per-feature contributions to the raw (log-odds) score.

LightGBM's exact TreeSHAP (`pred_contrib`) costs about 2 ms a row with 500 trees, too slow for a
nightly run over a million deals. dealscore uses *path contributions* (Saabas): walking a tree
from the root to a row's leaf, each split moves the expected output from the parent node's value
to the child's, and that move is credited to the split's feature. Per leaf these credits are
fixed, so they are computed once per model (`leaf_contributions`); scoring looks up each row's
leaves (LightGBM's `pred_leaf`) and adds the leaves' credits (`contributions`), in compiled code.

The decomposition is exact: base + the row's contributions = the raw score. It differs from SHAP
in how credit is shared between features on one path (the split nearer the leaf gets the whole
last step); for reasons in plain words that ranks the same drivers. `shap_contributions` gives
LightGBM's TreeSHAP for small batches and checks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd


@dataclass(frozen=True)
class LeafContributions:
    """Each leaf's credits per feature, as a CSR table over all trees' leaves."""

    base: float  # the raw score before any split: the sum of the trees' root values
    feature_names: list[str]
    leaf_offset: np.ndarray  # (trees,) where each tree's leaves start in the flat leaf index
    ptr: np.ndarray  # (leaves + 1,) CSR row pointers
    feature: np.ndarray  # (entries,) feature position
    value: np.ndarray  # (entries,) credit on the raw scale

    @property
    def n_trees(self) -> int:
        return len(self.leaf_offset)


def leaf_contributions(booster: lgb.Booster, num_iteration: int) -> LeafContributions:
    """Precompute every leaf's path credits for the first `num_iteration` trees."""
    nodes = booster.trees_to_dataframe()
    nodes = nodes[nodes["tree_index"] < num_iteration].reset_index(drop=True)
    names = booster.feature_name()
    index = pd.Index(nodes["node_index"])
    parent = index.get_indexer(nodes["parent_index"].fillna(""))  # -1 at roots
    values = nodes["value"].to_numpy(dtype=float)
    split = pd.Index(names).get_indexer(nodes["split_feature"].fillna(""))  # -1 at leaves
    roots = parent < 0
    base = float(values[roots].sum())

    is_leaf = nodes["left_child"].isna().to_numpy()
    leaf_nodes = np.flatnonzero(is_leaf)
    tree = nodes["tree_index"].to_numpy()[leaf_nodes]
    leaf_number = nodes["node_index"].str.rsplit("L", n=1).str[-1].to_numpy()[leaf_nodes]
    # A tree that never split is one leaf (index 0) with no credits.
    leaf_number = np.where(roots[leaf_nodes], 0, leaf_number.astype(float)).astype(np.int64)
    leaves_per_tree = np.bincount(tree, minlength=num_iteration)
    offset = np.concatenate([[0], np.cumsum(leaves_per_tree)[:-1]])
    flat_leaf = offset[tree] + leaf_number

    # Walk every leaf up to its root at once, one level per step.
    rows, feats, credits = [], [], []
    current = leaf_nodes.copy()
    owner = flat_leaf.copy()
    while len(current):
        up = parent[current]
        climbing = up >= 0
        current, owner, up = current[climbing], owner[climbing], up[climbing]
        rows.append(owner)
        feats.append(split[up])
        credits.append(values[current] - values[up])
        current = up
    entries = pd.DataFrame(
        {
            "leaf": np.concatenate(rows) if rows else np.empty(0, np.int64),
            "feature": np.concatenate(feats) if feats else np.empty(0, np.int64),
            "value": np.concatenate(credits) if credits else np.empty(0),
        }
    )
    entries = entries.groupby(["leaf", "feature"], as_index=False)["value"].sum()
    n_leaves = int(leaves_per_tree.sum())
    ptr = np.concatenate([[0], np.cumsum(np.bincount(entries["leaf"], minlength=n_leaves))])
    return LeafContributions(
        base=base,
        feature_names=list(names),
        leaf_offset=offset.astype(np.int64),
        ptr=ptr.astype(np.int64),
        feature=entries["feature"].to_numpy(dtype=np.int64),
        value=entries["value"].to_numpy(dtype=float),
    )


@functools.cache
def _kernel():
    """The compiled accumulation loop; numba is imported (about a second) only when needed."""
    import numba

    @numba.njit(parallel=True, cache=True)
    def accumulate(leaves, offset, ptr, feature, value, n_features):  # pragma: no cover
        n, trees = leaves.shape
        out = np.zeros((n, n_features))
        for i in numba.prange(n):
            for t in range(trees):
                g = offset[t] + leaves[i, t]
                for k in range(ptr[g], ptr[g + 1]):
                    out[i, feature[k]] += value[k]
        return out

    return accumulate


def contributions(table: LeafContributions, leaves: np.ndarray) -> np.ndarray:
    """(rows, features) credits from each row's leaf per tree (`pred_leaf` output)."""
    leaves = np.ascontiguousarray(leaves[:, : table.n_trees], dtype=np.int64)
    return _kernel()(
        leaves, table.leaf_offset, table.ptr, table.feature, table.value, len(table.feature_names)
    )


def shap_contributions(booster: lgb.Booster, X: pd.DataFrame, num_iteration: int) -> np.ndarray:
    """LightGBM's exact TreeSHAP: (rows, features + 1), the last column the expected value."""
    return np.asarray(booster.predict(X, pred_contrib=True, num_iteration=num_iteration))
