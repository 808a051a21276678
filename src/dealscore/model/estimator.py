"""The win-probability estimator: LightGBM, early-stopped on a later slice, then calibrated.

Follows scikit-learn's contract: hyper-parameters in __init__, `fit` returns self, fitted state
ends in `_`. No class re-weighting (is_unbalance, scale_pos_weight): it would spoil probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.utils.validation import check_is_fitted

Calibration = Literal["auto", "isotonic", "sigmoid"]


class _Sigmoid:
    """Platt scaling on the raw (log-odds) score."""

    def fit(self, raw: np.ndarray, y: np.ndarray) -> _Sigmoid:
        self.model = LogisticRegression(C=1e6).fit(raw.reshape(-1, 1), y)
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(raw.reshape(-1, 1))[:, 1]


def _calibrator(kind: str):
    return (
        IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        if kind == "isotonic"
        else _Sigmoid()
    )


def _choose_calibration(raw: np.ndarray, y: np.ndarray, seed: int) -> str:
    """Isotonic or sigmoid by held-out log loss: fit on one half of the slice, score the other."""
    rng = np.random.default_rng(seed)
    half = rng.random(len(y)) < 0.5
    losses = {}
    for kind in ("isotonic", "sigmoid"):
        total = 0.0
        for fit_part in (half, ~half):
            if len(np.unique(y[fit_part])) < 2 or (~fit_part).sum() == 0:
                return "sigmoid"  # too little data to tell: the smoother choice
            p = _calibrator(kind).fit(raw[fit_part], y[fit_part]).predict(raw[~fit_part])
            total += (
                log_loss(y[~fit_part], np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])
                * (~fit_part).sum()
            )
        losses[kind] = total
    return min(losses, key=lambda kind: losses[kind])


class WinProbabilityModel(ClassifierMixin, BaseEstimator):
    def __init__(
        self,
        n_estimators: int = 2000,
        learning_rate: float = 0.03,
        num_leaves: int = 31,
        min_child_samples: int = 50,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        early_stopping_rounds: int = 100,
        calibration: Calibration = "auto",
        random_state: int = 0,
        n_jobs: int = 2,
    ):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration = calibration
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        *,
        X_val: pd.DataFrame,
        y_val: np.ndarray,
        X_cal: pd.DataFrame,
        y_cal: np.ndarray,
        sample_weight: np.ndarray | None = None,
        callbacks: Sequence[Callable[..., None]] = (),
    ) -> WinProbabilityModel:
        """Boost on (X, y), stop early on the later (X_val, y_val), calibrate on (X_cal, y_cal);
        `callbacks` are LightGBM's, called after each round (progress reports)."""
        if self.calibration not in ("auto", "isotonic", "sigmoid"):
            raise ValueError(
                f"calibration must be auto, isotonic or sigmoid, got {self.calibration!r}"
            )
        y, y_val, y_cal = (np.asarray(v).astype(int) for v in (y, y_val, y_cal))
        for name, labels in (("training", y), ("validation", y_val), ("calibration", y_cal)):
            if len(np.unique(labels)) < 2:
                raise ValueError(
                    f"the {name} slice needs both won and not-won rows; it has {len(labels)} rows"
                )
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.booster_ = lgb.LGBMClassifier(
            objective="binary",
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            subsample=self.subsample,
            subsample_freq=1,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            verbose=-1,
        ).fit(
            X,
            y,
            sample_weight=sample_weight,
            eval_X=X_val[X.columns],  # LightGBM 4.7 replaced eval_set with eval_X / eval_y
            eval_y=y_val,
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False), *callbacks],
        )
        self.best_iteration_ = int(self.booster_.best_iteration_ or self.n_estimators)
        raw = self.raw_score(X_cal)
        self.calibration_ = (
            _choose_calibration(raw, y_cal, self.random_state)
            if self.calibration == "auto"
            else self.calibration
        )
        self.calibrator_ = _calibrator(self.calibration_).fit(raw, y_cal)
        self.classes_ = np.array([0, 1])
        return self

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        """The boosted log-odds before calibration."""
        check_is_fitted(self, "booster_")
        return np.asarray(
            self.booster_.predict(
                X[self.feature_names_in_], raw_score=True, num_iteration=self.best_iteration_
            )
        )

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Win probability from raw scores (for callers that computed them another way)."""
        check_is_fitted(self, "calibrator_")
        return np.clip(self.calibrator_.predict(np.asarray(raw, dtype=float)), 0.0, 1.0)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities: column 1 is the win probability."""
        p = self.calibrate(self.raw_score(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
