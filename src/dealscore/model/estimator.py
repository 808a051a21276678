"""The win-probability estimator: one rung of the model ladder, cross-fitted over time folds,
calibrated on its out-of-fold scores, then refitted on every labelled row.

Follows scikit-learn's contract: hyper-parameters in __init__, `fit` returns self, fitted state
ends in `_`. No class re-weighting (is_unbalance, scale_pos_weight): it would spoil probabilities.

The rungs, simplest first (model/ladder.py picks one on the data):
- `base_rate`: the history's win rate, for every deal.
- `crm_rates`: what the CRM itself says, learned from history: the stage, the rep's forecast
  category and the CRM's stage probability, in a penalised logistic regression.
- With `timing` features (the won-this-quarter model's days left in the quarter), those two read
  them as well: the base rate becomes a logistic regression on them alone.
- `logistic_regression`: every feature, in a penalised logistic regression.
- `lightgbm`: every feature, in boosted trees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from dealscore.model.metrics import row_loss
from dealscore.model.scorers import BaseRateScorer, BoostedScorer, LinearScorer, logit, sigmoid
from dealscore.model.split import TimeFolds

Calibration = Literal["auto", "isotonic", "sigmoid"]
Rung = Literal["base_rate", "crm_rates", "logistic_regression", "lightgbm"]
RUNGS: tuple[Rung, ...] = ("base_rate", "crm_rates", "logistic_regression", "lightgbm")
# The CRM's own view of a deal: its stage, the rep's forecast category, the CRM's probability.
CRM_COLUMNS = ("stage_rank", "rep_category_rank", "crm_probability")
# Read by the linear rung as one level each, where the rows hold them (the won-this-quarter
# model's week of the quarter: features/deal.py).
LEVEL_COLUMNS = ("quarter_week",)
MAX_REFIT_SHIFT = 3.0  # log-odds: a refit further off than this is not a matter of sharpness
QUARTER_DAYS = 91.0  # the timed calibration's unit of days left


class _Sigmoid:
    """Platt scaling on the raw (log-odds) score."""

    def fit(self, raw: np.ndarray, y: np.ndarray, sample_weight=None) -> _Sigmoid:
        self.model = LogisticRegression(C=1e6).fit(raw.reshape(-1, 1), y, sample_weight)
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        if not len(raw):  # nothing to score (no deal open at the date)
            return np.empty(0)
        return self.model.predict_proba(raw.reshape(-1, 1))[:, 1]


class _Timed:
    """Platt scaling of calibrated probabilities whose slope moves with the days left in the
    quarter (WinProbabilityModel's `timed_calibration`)."""

    @staticmethod
    def _inputs(p: np.ndarray, days: np.ndarray) -> np.ndarray:
        score = logit(p)
        left = np.nan_to_num(np.asarray(days, dtype=float)) / QUARTER_DAYS
        return np.column_stack([score, score * left])

    def fit(self, p: np.ndarray, days: np.ndarray, y: np.ndarray, sample_weight=None) -> _Timed:
        self.model = LogisticRegression(C=1e6).fit(self._inputs(p, days), y, sample_weight)
        return self

    def predict(self, p: np.ndarray, days: np.ndarray) -> np.ndarray:
        if not len(p):
            return np.empty(0)
        return self.model.predict_proba(self._inputs(p, days))[:, 1]


def _calibrator(kind: str):
    return (
        IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        if kind == "isotonic"
        else _Sigmoid()
    )


def _choose_calibration(raw: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int) -> str:
    """Isotonic or sigmoid by held-out log loss: fit on one half of the rows, score the other
    (rows weighted by `w`)."""
    rng = np.random.default_rng(seed)
    half = rng.random(len(y)) < 0.5
    losses = {}
    for kind in ("isotonic", "sigmoid"):
        total = 0.0
        for fit, other in ((half, ~half), (~half, half)):
            if len(np.unique(y[fit])) < 2 or not other.any():
                return "sigmoid"  # too little data to tell: the smoother choice
            p = _calibrator(kind).fit(raw[fit], y[fit], sample_weight=w[fit]).predict(raw[other])
            total += float((w[other] * row_loss(y[other], p)).sum())
        losses[kind] = total
    return min(losses, key=lambda kind: losses[kind])


class WinProbabilityModel(ClassifierMixin, BaseEstimator):
    timing: tuple[str, ...] = ()  # models saved before it had none
    refit_correction: bool = False  # likewise
    refit_shift_: float = 0.0
    timed_calibration: bool = False  # likewise
    timed_: _Timed | None = None

    def __init__(
        self,
        rung: Rung = "lightgbm",
        n_estimators: int = 2000,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 50,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        early_stopping_rounds: int = 50,
        calibration: Calibration = "auto",
        random_state: int = 0,
        n_jobs: int = 2,
        max_bagged_rows: int = 250_000,
        penalty: float | None = None,
        timing: tuple[str, ...] = (),
        refit_correction: bool = False,
        timed_calibration: bool = False,
    ):
        self.rung = rung
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
        self.max_bagged_rows = max_bagged_rows
        self.penalty = penalty  # the linear rungs' C; None: chosen on the folds
        # Features even the simplest rungs read: the won-this-quarter model's days left in the
        # quarter, without which its base rate would be the same at a quarter's start and end.
        self.timing = timing
        # Keep, after the refit, the win rate the calibration was fitted to (_refit_shift): for
        # the won-this-quarter model, whose probabilities are summed into the quarter's number.
        self.refit_correction = refit_correction
        # Calibrate against the first `timing` column (the days left in the quarter) as well:
        # the won-this-quarter model's scores run too sharp at a quarter's start and too flat
        # near its end, out of fold, in sample and forward alike.
        self.timed_calibration = timed_calibration

    def _scorer(self) -> BaseRateScorer | LinearScorer | BoostedScorer:
        penalties = LinearScorer.PENALTIES if self.penalty is None else (self.penalty,)
        if self.rung == "base_rate":
            if self.timing:
                return LinearScorer(self.timing, penalties=penalties, seed=self.random_state)
            return BaseRateScorer()
        if self.rung == "crm_rates":
            return LinearScorer(
                CRM_COLUMNS + tuple(self.timing),
                categorical=("stage_rank", "rep_category_rank"),
                probabilities=("crm_probability",),
                penalties=penalties,
                seed=self.random_state,
            )
        if self.rung == "logistic_regression":
            return LinearScorer(
                categorical=LEVEL_COLUMNS, penalties=penalties, seed=self.random_state
            )
        if self.rung == "lightgbm":
            params = {
                "objective": "binary",
                "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves,
                "min_child_samples": self.min_child_samples,
                "subsample": self.subsample,
                "subsample_freq": 1,
                "colsample_bytree": self.colsample_bytree,
                "reg_lambda": self.reg_lambda,
                "seed": self.random_state,
                "num_threads": self.n_jobs,
                "verbose": -1,
            }
            return BoostedScorer(
                params, self.n_estimators, self.early_stopping_rounds, self.max_bagged_rows
            )
        raise ValueError(f"rung must be one of {', '.join(RUNGS)}, got {self.rung!r}")

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        *,
        folds: TimeFolds,
        sample_weight: np.ndarray | None = None,
        callbacks: Sequence[Callable[..., None]] = (),
        refit: bool = True,
    ) -> WinProbabilityModel:
        """Cross-fit the rung over `folds` (out-of-fold raw scores, and its rounds or penalty
        chosen on them), fit the calibration on those scores, then refit on every row (not when
        only the out-of-fold probabilities are wanted: `refit` false, and nothing to predict
        with). `callbacks` are LightGBM's, called after each round (progress reports)."""
        if self.calibration not in ("auto", "isotonic", "sigmoid"):
            raise ValueError(
                f"calibration must be auto, isotonic or sigmoid, got {self.calibration!r}"
            )
        y = np.asarray(y).astype(int)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if len(np.unique(y)) < 2:
            raise ValueError(f"training needs both won and not-won rows; it has {len(y):,} rows")
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        scorer = self._scorer()
        oof_raw = scorer.cross_fit(X, y, w, folds, callbacks)
        held = np.isfinite(oof_raw)
        recency = folds.recency()
        if len(np.unique(y[held])) < 2:
            raise ValueError(
                "no time fold could be held out with both won and not-won rows to learn from: "
                "the history is too short for its label horizon"
            )
        self.calibration_ = (
            _choose_calibration(oof_raw[held], y[held], recency[held], self.random_state)
            if self.calibration == "auto"
            else self.calibration
        )
        days = self._days(X)
        self.calibrator_, self.timed_ = self._fitted_calibration(oof_raw, y, days, held, recency)
        self.oof_ = self._cross_calibrated(oof_raw, y, days, folds)
        self.refit_shift_ = 0.0
        if refit:
            self.scorer_ = scorer.fit(X, y, w, callbacks)
            if self.refit_correction:
                self.refit_shift_ = self._refit_shift(X, y, days, held, recency)
        elif isinstance(scorer, BoostedScorer):
            scorer.data_ = None  # the binned rows are not kept
        self.best_iteration_ = int(getattr(scorer, "rounds_", 0))
        self.shift_ = 0.0
        self.classes_ = np.array([0, 1])
        return self

    def _days(self, X: pd.DataFrame) -> np.ndarray | None:
        """The days left in the quarter the timed calibration reads (None: the model has none)."""
        if not (self.timed_calibration and self.timing):
            return None
        return X[self.timing[0]].to_numpy(dtype=float)

    def _fitted_calibration(
        self,
        raw: np.ndarray,
        y: np.ndarray,
        days: np.ndarray | None,
        rows: np.ndarray,
        recency: np.ndarray,
    ) -> tuple[IsotonicRegression | _Sigmoid, _Timed | None]:
        """The calibration fitted on `rows`' raw scores and, given their `days` left in the
        quarter, the timed one on top: a sharpness that moves through the quarter is what one
        map of the raw score cannot mend."""
        calibrator = _calibrator(self.calibration_).fit(
            raw[rows], y[rows], sample_weight=recency[rows]
        )
        if days is None:
            return calibrator, None
        p = calibrator.predict(raw[rows])
        return calibrator, _Timed().fit(p, days[rows], y[rows], sample_weight=recency[rows])

    def _cross_calibrated(
        self, raw: np.ndarray, y: np.ndarray, days: np.ndarray | None, folds: TimeFolds
    ) -> np.ndarray:
        """Out-of-fold probabilities: each block's raw scores calibrated by a calibration fitted
        on the other blocks' (the pooled one where the others hold one outcome)."""
        out = np.full(len(y), np.nan)
        held = np.isfinite(raw)
        recency = folds.recency()
        for fold in range(folds.k):
            rows = held & (folds.block == fold)
            if not rows.any():
                continue
            others = held & (folds.block != fold)
            calibrator, timed = (
                self._fitted_calibration(raw, y, days, others, recency)
                if len(np.unique(y[others])) == 2
                else (self.calibrator_, self.timed_)
            )
            out[rows] = _calibrated(calibrator, timed, raw[rows], days, rows)
        return out

    def _refit_shift(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        days: np.ndarray | None,
        held: np.ndarray,
        recency: np.ndarray,
    ) -> float:
        """The log-odds shift that gives the refitted rung, through the calibration, the win rate
        the calibration was fitted to (the held rows' rate, weighted by recency). The calibration
        learned the out-of-fold scores of rungs fitted on part of the rows; refitted on all of
        them the rung is sharper (a penalty counts for less against more rows, boosting runs its
        rounds on more data), and through the same calibration its probabilities summed to
        another number of wins than those rows had (fewer, on short generated histories)."""
        # Scored whole, then the held rows taken: a copy of every held row would cost memory.
        p = logit(_calibrated(self.calibrator_, self.timed_, self.raw_score(X)[held], days, held))
        weight, target = recency[held], float(np.average(y[held], weights=recency[held]))

        def excess(shift: float) -> float:
            return float(np.average(sigmoid(p + shift), weights=weight)) - target

        low, high = -MAX_REFIT_SHIFT, MAX_REFIT_SHIFT
        if excess(low) >= 0 or excess(high) <= 0:  # no root within reach: leave it be
            return 0.0
        return float(brentq(excess, low, high, xtol=1e-6))

    def adjust(self, shift: float) -> WinProbabilityModel:
        """Move every calibrated probability by `shift` in log-odds (a recent change of the
        win rate the labelled history cannot show yet: model/recent.py)."""
        check_is_fitted(self, "calibrator_")
        self.shift_ = float(shift)
        return self

    @property
    def base_(self) -> float:
        """The raw score before any feature moves it."""
        check_is_fitted(self, "scorer_")
        return float(self.scorer_.base_)

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        """The rung's log-odds before calibration."""
        check_is_fitted(self, "scorer_")
        return np.asarray(self.scorer_.raw_score(X[self.feature_names_in_]), dtype=float)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """(rows, features) credits: `base_` plus a row's credits is its raw score."""
        check_is_fitted(self, "scorer_")
        return self.scorer_.contributions(X[self.feature_names_in_])

    def calibrate(self, raw: np.ndarray, days: np.ndarray | None = None) -> np.ndarray:
        """Win probability from raw scores (for callers that computed them another way), and
        the days left in the quarter where the model's calibration reads them."""
        check_is_fitted(self, "calibrator_")
        raw = np.asarray(raw, dtype=float)
        if self.timed_ is not None and days is None:
            raise ValueError("this model's calibration reads the days left in the quarter")
        p = _calibrated(self.calibrator_, self.timed_, raw, days)
        shift = self.refit_shift_ + self.shift_
        if not shift:
            return p
        return sigmoid(logit(p) + shift)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities: column 1 is the win probability."""
        p = self.calibrate(self.raw_score(X), self._days(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def _calibrated(
    calibrator: IsotonicRegression | _Sigmoid,
    timed: _Timed | None,
    raw: np.ndarray,
    days: np.ndarray | None,
    rows: np.ndarray | slice = slice(None),
) -> np.ndarray:
    """Probabilities from raw scores through a calibration (`days[rows]` the raw scores' days
    left in the quarter, for the timed part)."""
    p = np.clip(calibrator.predict(raw), 0.0, 1.0)
    if timed is None or days is None:
        return p
    return np.clip(timed.predict(p, days[rows]), 0.0, 1.0)
