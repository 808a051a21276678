"""The rungs' raw scorers: log-odds before calibration, and each feature's share of them.

Each scorer is cross-fitted over time folds first (`cross_fit`: out-of-fold raw scores, and the
one setting chosen on them: boosting rounds, or the penalty), then refitted on every row with
that setting (`fit`). `contributions` splits a row's raw score into the scorer's `base_` plus
one credit per feature, so reasons read the same way whichever rung scores:
- `BaseRateScorer`: the history's win rate for every deal; no feature moves it.
- `LinearScorer`: a penalised logistic regression on a design of the features (numbers on a
  signed log scale, categories one-hot, probabilities as log-odds, a flag where a value is
  missing), standardised; a feature's credit is the sum of its columns' coefficient x value.
- `BoostedScorer`: LightGBM; credits are path contributions (model/reasons.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from dealscore.model.metrics import row_loss
from dealscore.model.reasons import (
    IS_MISSING,
    LEVEL,
    LOGIT,
    NUMERIC,
    LinearTerms,
    TreeArrays,
    linear_contributions,
    path_contributions,
    tree_arrays,
)
from dealscore.model.split import TimeFolds

Callbacks = Sequence[Callable[..., None]]
EPS = 1e-6


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def sigmoid(raw: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(raw, dtype=float)))


def _usable(y: np.ndarray, train: np.ndarray, held: np.ndarray) -> bool:
    """A fold can be fitted and judged: both outcomes among its training rows, rows held out."""
    return len(held) > 0 and len(np.unique(y[train])) == 2


class BaseRateScorer:
    """Every deal gets the history's (weighted) win rate."""

    def cross_fit(
        self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, folds: TimeFolds, callbacks=()
    ) -> np.ndarray:
        oof = np.full(len(y), np.nan)
        for train, held in folds.splits():
            if _usable(y, train, held):
                oof[held] = logit(np.average(y[train], weights=w[train]))
        return oof

    def fit(self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, callbacks=()) -> BaseRateScorer:
        self.base_ = float(logit(np.average(y, weights=w)))
        return self

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        return np.full(len(X), self.base_)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        return np.zeros((len(X), X.shape[1]))


@dataclass(frozen=True)
class _Column:
    """One input feature's place in the design: how it is read and which columns it makes."""

    feature: int  # position among the scorer's input features
    kind: str  # "numeric", "logit" or "category"
    fill: float  # numeric: the median that stands in for a missing value
    levels: tuple[float, ...]  # category: the values seen, one column each
    flag: bool  # a column saying the value is missing


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


class LinearScorer:
    """A penalised logistic regression on a standardised design of the features.

    `columns`: the features it reads (None: all); `categorical`: read one-hot;
    `probabilities`: read as log-odds; `penalties`: the inverse penalties (C) tried, the one
    with the best out-of-fold log loss kept, on up to `tune_rows` rows (beyond, the penalty of
    a hundred coefficients barely matters: the weakest is used). At most `max_rows` rows (a seeded draw) fit it: a
    hundred coefficients need no more, and the design of two million rows would not fit in
    memory twice. A value beyond what the fitted rows held is read as their extreme: a line
    fitted on young deals says nothing of a deal twice as old, and must not extrapolate.
    """

    MAX_LEVELS = 30
    PENALTIES = (0.005, 0.02, 0.08, 0.3)  # small histories need the stronger ones

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        categorical: Sequence[str] = (),
        probabilities: Sequence[str] = (),
        penalties: Sequence[float] = PENALTIES,
        tune_rows: int = 50_000,
        max_rows: int = 300_000,
        seed: int = 0,
    ):
        self.columns = None if columns is None else list(columns)
        self.categorical = tuple(categorical)
        self.probabilities = tuple(probabilities)
        self.penalties = tuple(penalties)
        self.tune_rows = tune_rows
        self.max_rows = max_rows
        self.seed = seed

    def _inputs(self, X: pd.DataFrame) -> list[str]:
        return list(X.columns) if self.columns is None else [c for c in self.columns if c in X]

    def _learn_design(self, X: pd.DataFrame) -> None:
        """How each feature becomes columns, from the values seen (no labels involved; medians
        and scales from at most `max_rows` of them)."""
        names = list(X.columns)
        sample = X.iloc[self._rows(np.arange(len(X)))]
        plan = []
        for name in self._inputs(X):
            if name in self.categorical:
                levels = np.unique(X[name].to_numpy(dtype=float))
                levels = levels[~np.isnan(levels)]
                if 0 < len(levels) <= self.MAX_LEVELS:
                    flag = bool(X[name].isna().any())
                    plan.append(_Column(names.index(name), "category", 0.0, tuple(levels), flag))
                    continue
            x = sample[name].to_numpy(dtype=float)
            seen = ~np.isnan(x)
            if not seen.any():
                continue  # never filled: it can say nothing
            flag = bool(X[name].isna().any())
            kind = "logit" if name in self.probabilities else "numeric"
            read = logit(x[seen]) if kind == "logit" else _signed_log(x[seen])
            plan.append(_Column(names.index(name), kind, float(np.median(read)), (), flag))
        self.plan_ = tuple(plan)
        self.n_features_ = len(names)
        design, owner = self._raw_design(sample)
        self.mean_ = design.mean(axis=0)
        scale = design.std(axis=0)
        self.keep_ = scale > 1e-12  # a constant column says nothing
        self.scale_ = np.where(self.keep_, scale, 1.0)
        # Which feature each kept column belongs to: credits are summed per feature.
        self.owner_ = np.zeros((int(self.keep_.sum()), self.n_features_))
        self.owner_[np.arange(len(self.owner_)), owner[self.keep_]] = 1.0

    def _raw_design(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The design's columns before standardising, and the feature each comes from."""
        parts: list[np.ndarray] = []
        owners: list[int] = []
        values = X.to_numpy(dtype=float)
        for column in self.plan_:
            x = values[:, column.feature]
            missing = np.isnan(x)
            if column.kind == "category":
                parts.extend((x == level).astype(float) for level in column.levels)
                owners.extend([column.feature] * len(column.levels))
            else:
                read = logit(x) if column.kind == "logit" else _signed_log(x)
                parts.append(np.where(missing, column.fill, read))
                owners.append(column.feature)
            if column.flag:
                parts.append(missing.astype(float))
                owners.append(column.feature)
        design = np.column_stack(parts) if parts else np.zeros((len(X), 0))
        return design, np.asarray(owners, dtype=np.int64)

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        Z = ((self._raw_design(X)[0] - self.mean_) / self.scale_)[:, self.keep_]
        if hasattr(self, "low_"):  # fitted: within the range of the rows it was fitted on
            Z = np.clip(Z, self.low_, self.high_)
        return Z

    def _rows(self, positions: np.ndarray) -> np.ndarray:
        if len(positions) <= self.max_rows:
            return positions
        rng = np.random.default_rng(self.seed)
        return np.sort(rng.choice(positions, self.max_rows, replace=False))

    def _regression(self, Z: np.ndarray, y: np.ndarray, w: np.ndarray, C: float):
        # Newton-Cholesky: a few exact steps on a hundred standardised columns (L-BFGS took
        # eighty and ten times as long).
        return LogisticRegression(C=C, solver="newton-cholesky", max_iter=100).fit(
            Z, y, sample_weight=w
        )

    def cross_fit(
        self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, folds: TimeFolds, callbacks=()
    ) -> np.ndarray:
        self._learn_design(X)
        penalties = self.penalties if len(y) <= self.tune_rows else self.penalties[-1:]
        oof = {C: np.full(len(y), np.nan) for C in penalties}
        for train, held in folds.splits():
            if not _usable(y, train, held) or not self.keep_.any():
                continue
            rows = self._rows(train)
            Z = self._design(X.iloc[rows])
            # Held-out values beyond the fitted rows' are read as their extremes (no extrapolation).
            Z_held = np.clip(self._design(X.iloc[held]), Z.min(axis=0), Z.max(axis=0))
            for C in penalties:
                fitted = self._regression(Z, y[rows], w[rows], C)
                oof[C][held] = fitted.decision_function(Z_held)
        losses = {
            C: float(row_loss(y[done], sigmoid(raw[done])).mean())
            if (done := np.isfinite(raw)).any()
            else np.inf
            for C, raw in oof.items()
        }
        self.C_ = min(losses, key=lambda C: losses[C])
        return oof[self.C_]

    def fit(self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, callbacks=()) -> LinearScorer:
        if not hasattr(self, "plan_"):
            self._learn_design(X)
        C = getattr(self, "C_", self.penalties[-1])
        rows = self._rows(np.arange(len(y)))
        if not self.keep_.any():  # nothing to read: the base rate
            self.coef_, self.base_ = np.zeros(0), float(logit(np.average(y, weights=w)))
            return self
        Z = self._design(X.iloc[rows])
        fitted = self._regression(Z, y[rows], w[rows], C)
        self.coef_ = fitted.coef_[0]
        self.base_ = float(fitted.intercept_[0])
        self.low_, self.high_ = Z.min(axis=0), Z.max(axis=0)
        return self

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Per feature, the sum of its design columns' coefficient x standardised value."""
        if not len(self.coef_):
            return np.zeros((len(X), self.n_features_))
        return linear_contributions(self._terms(), X.to_numpy(dtype=float), EPS)

    def _terms(self) -> LinearTerms:
        """The kept design columns as flat arrays, in `_raw_design`'s order."""
        source, kind, value = [], [], []
        for column in self.plan_:
            if column.kind == "category":
                source += [column.feature] * len(column.levels)
                kind += [LEVEL] * len(column.levels)
                value += list(column.levels)
            else:
                source.append(column.feature)
                kind.append(LOGIT if column.kind == "logit" else NUMERIC)
                value.append(column.fill)
            if column.flag:
                source.append(column.feature)
                kind.append(IS_MISSING)
                value.append(0.0)
        keep = self.keep_
        fitted = hasattr(self, "low_")
        return LinearTerms(
            source=np.asarray(source, dtype=np.int64)[keep],
            kind=np.asarray(kind, dtype=np.int64)[keep],
            value=np.asarray(value, dtype=float)[keep],
            mean=self.mean_[keep],
            scale=self.scale_[keep],
            low=self.low_ if fitted else np.full(int(keep.sum()), -np.inf),
            high=self.high_ if fitted else np.full(int(keep.sum()), np.inf),
            coef=self.coef_,
            owner=np.argmax(self.owner_, axis=1).astype(np.int64),
            width=self.n_features_,
        )

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        return self.base_ + self._design(X) @ self.coef_


class BoostedScorer:
    """LightGBM; the number of rounds is where the out-of-fold log loss, averaged over the
    folds, stops improving (early stopping across the folds, as `lgb.cv` does it). Each round
    draws at most `max_bagged_rows` rows (stochastic boosting): on millions of snapshot rows the
    folds and the refit cost what a few hundred thousand would, with the same draw for both."""

    def __init__(self, params: dict, max_rounds: int, patience: int, max_bagged_rows: int):
        self.params = params
        self.max_rounds = max_rounds
        self.patience = patience
        self.max_bagged_rows = max_bagged_rows

    data_: lgb.Dataset | None = None  # the rows binned once for the folds and the refit

    def _dataset(self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray) -> lgb.Dataset:
        self.params_ = {
            **self.params,
            "metric": "binary_logloss",
            "subsample": min(self.params["subsample"], self.max_bagged_rows / max(len(y), 1)),
        }
        return lgb.Dataset(X, label=y, weight=w, params={"verbose": -1}, free_raw_data=False)

    def cross_fit(
        self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, folds: TimeFolds, callbacks=()
    ) -> np.ndarray:
        splits = [(t, h) for t, h in folds.splits() if _usable(y, t, h)]
        oof = np.full(len(y), np.nan)
        if not splits:
            return oof
        self.data_ = self._dataset(X, y, w)
        # Each fold's round draws at most max_bagged_rows of its own training rows, as the refit does.
        fold_rows = float(np.mean([len(t) for t, _ in splits]))
        params = {
            **self.params_,
            "subsample": min(self.params["subsample"], self.max_bagged_rows / max(fold_rows, 1)),
        }
        result = lgb.cv(
            params,
            self.data_,
            num_boost_round=self.max_rounds,
            folds=splits,
            callbacks=[lgb.early_stopping(self.patience, verbose=False), *callbacks],
            return_cvbooster=True,
        )
        boosters = result["cvbooster"]
        curve = result["valid binary_logloss-mean"]  # cut at the best round by early stopping
        assert isinstance(boosters, lgb.CVBooster) and isinstance(curve, list)
        self.rounds_ = int(boosters.best_iteration or len(curve))
        for booster, (_, held) in zip(boosters.boosters, splits, strict=True):
            oof[held] = booster.predict(X.iloc[held], raw_score=True, num_iteration=self.rounds_)
        return oof

    def fit(
        self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, callbacks: Callbacks = ()
    ) -> BoostedScorer:
        data = self._dataset(X, y, w) if self.data_ is None else self.data_
        rounds = getattr(self, "rounds_", self.max_rounds)
        self.booster_ = lgb.train(
            self.params_,
            data,
            num_boost_round=rounds,
            # Nothing is evaluated: the training loss over millions of rows each round would
            # cost a tenth of the refit and say nothing the folds did not.
            callbacks=list(callbacks),
        )
        self.rounds_ = rounds
        self.trees_: TreeArrays = tree_arrays(self.booster_, rounds)
        self.base_ = self.trees_.base
        self.data_ = None  # the binned copy of the rows is not kept with the model
        return self

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        if X.empty:  # LightGBM refuses an empty frame
            return np.empty(0)
        return np.asarray(self.booster_.predict(X, raw_score=True, num_iteration=self.rounds_))

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        return path_contributions(self.trees_, X.to_numpy(dtype=float))
