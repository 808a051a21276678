"""Evaluation of win probabilities: discrimination, calibration, reliability and lift."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean probability| over equal-width bins, weighted by bin size."""
    table = reliability_table(y, p, bins)
    return float((table["count"] * (table["observed"] - table["predicted"]).abs()).sum() / len(y))


def chance_ece(p: np.ndarray, quantile: float = 0.95, draws: int = 200, seed: int = 0) -> float:
    """The ECE a perfectly calibrated predictor shows on these probabilities by chance alone:
    the `quantile` of ECE over outcomes drawn from p itself (consistency resampling)."""
    p = np.asarray(p, dtype=float)
    if not len(p):
        return float("nan")
    bins = 10
    which = np.clip(np.digitize(p, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    predicted = np.bincount(which, weights=p, minlength=bins)
    rng = np.random.default_rng(seed)
    eces = np.empty(draws)
    for k in range(draws):  # one vectorised pass per draw, not per row
        y = rng.random(len(p)) < p
        eces[k] = np.abs(np.bincount(which, weights=y, minlength=bins) - predicted).sum() / len(p)
    return float(np.quantile(eces, quantile))


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Per probability bin: rows, mean predicted probability, observed win rate."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    frame = pd.DataFrame({"bin": which, "y": y, "p": p})
    table = frame.groupby("bin").agg(
        count=("y", "size"), predicted=("p", "mean"), observed=("y", "mean")
    )
    table.insert(0, "low", edges[table.index])
    table.insert(1, "high", edges[table.index + 1])
    return table.reset_index(drop=True)


def lift_by_decile(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Deciles by probability, best first: win rate and lift over the overall rate."""
    order = np.argsort(-p, kind="stable")
    decile = np.arange(len(p)) * 10 // max(len(p), 1)
    frame = pd.DataFrame(
        {"decile": decile + 1, "y": np.asarray(y)[order], "p": np.asarray(p)[order]}
    )
    table = frame.groupby("decile").agg(
        count=("y", "size"), predicted=("p", "mean"), observed=("y", "mean")
    )
    table["lift"] = table["observed"] / max(np.mean(y), 1e-12)
    return table.reset_index()


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier and expected calibration error of probabilities p."""
    y = np.asarray(y)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "rows": float(len(y)),
        "positive_rate": float(np.mean(y)) if len(y) else float("nan"),
    }


def row_loss(y: np.ndarray, p: np.ndarray, metric: str = "log_loss") -> np.ndarray:
    """Each row's share of `metric` (log_loss or brier): their mean is the metric."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    if metric == "brier":
        return (p - y) ** 2
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def clustered_mean(
    values: np.ndarray, groups: np.ndarray, weight: np.ndarray | None = None
) -> tuple[float, float]:
    """The (weighted) mean of per-row values and its standard error, rows of one group (a deal
    scored at several dates) counted as dependent."""
    values = np.asarray(values, dtype=float)
    w = np.ones(len(values)) if weight is None else np.asarray(weight, dtype=float)
    mean = float(np.average(values, weights=w))
    codes, _ = pd.factorize(np.asarray(groups))
    sums = np.bincount(codes, weights=w * (values - mean))
    return mean, float(np.sqrt((sums**2).sum()) / w.sum())
