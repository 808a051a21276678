"""Path contributions: exact (base + credits = raw score), fast, and credited to used features."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from dealscore.model.reasons import path_contributions, tree_arrays


@pytest.fixture(scope="module")
def fitted() -> tuple[lgb.Booster, pd.DataFrame]:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(3000, 6)), columns=[f"f{i}" for i in range(6)])
    X.loc[rng.random(3000) < 0.1, "f1"] = np.nan  # missing values take LightGBM's default side
    logit = 1.5 * X["f0"] - np.nan_to_num(X["f1"]) + 0.5 * X["f2"] * X["f3"]
    y = (rng.random(3000) < 1 / (1 + np.exp(-logit))).astype(int)
    model = lgb.LGBMClassifier(n_estimators=60, num_leaves=15, verbose=-1).fit(X, y)
    return model.booster_, X


def test_base_plus_credits_is_the_raw_score(fitted):
    # given a boosted model and its precomputed leaf credits
    booster, X = fitted
    trees = tree_arrays(booster, 40)  # the first 40 trees, as with early stopping
    # when
    credits = path_contributions(trees, X.to_numpy())
    # then the decomposition is exact, tree count and all
    raw = booster.predict(X, raw_score=True, num_iteration=40)
    np.testing.assert_allclose(trees.base + credits.sum(axis=1), raw, atol=1e-9)
    # and missing values where training had none are routed as LightGBM routes them
    holes = X.mask(np.random.default_rng(5).random(X.shape) < 0.2)
    raw = booster.predict(holes, raw_score=True, num_iteration=40)
    credits = path_contributions(trees, holes.to_numpy())
    np.testing.assert_allclose(trees.base + credits.sum(axis=1), raw, atol=1e-9)
    assert credits.shape == (len(X), 6)


def test_only_features_the_trees_split_on_get_credit(fitted):
    booster, X = fitted
    trees = tree_arrays(booster, 60)
    credits = path_contributions(trees, X.to_numpy())
    used = set(booster.trees_to_dataframe()["split_feature"].dropna())
    for position, name in enumerate(trees.feature_names):
        assert (np.abs(credits[:, position]).max() > 0) == (name in used)


def test_the_main_drivers_agree_with_tree_shap(fitted):
    # given both decompositions for the same rows
    booster, X = fitted
    path = path_contributions(tree_arrays(booster, 60), X.to_numpy())
    # LightGBM's exact TreeSHAP; its last column is the expected value
    shap = np.asarray(booster.predict(X, pred_contrib=True, num_iteration=60))[:, :-1]
    # then each row's strongest driver is the same in most rows, and the credits correlate
    agree = (np.abs(path).argmax(axis=1) == np.abs(shap).argmax(axis=1)).mean()
    assert agree > 0.8
    assert np.corrcoef(path[:, 0], shap[:, 0])[0, 1] > 0.9
