"""Three outcomes: won, lost to a competitor, or no decision (lost to the status quo).

A deal that is not won within the horizon H either closes lost within it or ends in no decision:
closed as such, or still undecided at H (the window has passed and nobody decided). P(won) is
the win model's; a second model gives q = P(no decision | not won within H), so P(no decision) =
(1 - P(won)) q and P(lost) = (1 - P(won)) (1 - q): the three sum to 1 and P(won) keeps its
meaning.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.model.metrics import evaluate

OUTCOMES = ("won", "lost", "no_decision")


def three_outcomes(p_won: np.ndarray, q_no_decision: np.ndarray) -> np.ndarray:
    """(rows, 3) probabilities of won, lost and no decision; each row sums to 1."""
    p = np.asarray(p_won, dtype=float)
    q = np.asarray(q_no_decision, dtype=float)
    return np.column_stack([p, (1 - p) * (1 - q), (1 - p) * q])


def outcome_labels(won: np.ndarray, no_decision: np.ndarray) -> np.ndarray:
    """Each row's outcome within H as a position in OUTCOMES, from the two labels."""
    won = np.asarray(won, dtype=bool)
    return np.where(won, 0, np.where(np.asarray(no_decision, dtype=bool), 2, 1))


def outcome_metrics(outcome: np.ndarray, contenders: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per contender and outcome: mean predicted against actual, ECE, ROC AUC and Brier; and
    per contender the multiclass Brier (the sum over the three), on the rows every contender
    covers."""
    covered = np.all([np.isfinite(p).all(axis=1) for p in contenders.values()], axis=0)
    records = []
    for name, probabilities in contenders.items():
        p = probabilities[covered]
        truth = outcome[covered]
        for k, label in enumerate(OUTCOMES):
            metrics = evaluate((truth == k).astype(int), p[:, k])
            records.append(
                {
                    "contender": name,
                    "outcome": label,
                    "mean_predicted": float(p[:, k].mean()),
                    "actual": metrics["positive_rate"],
                    "ece": metrics["ece"],
                    "roc_auc": metrics["roc_auc"],
                    "brier": metrics["brier"],
                    "rows": metrics["rows"],
                }
            )
        onehot = np.eye(len(OUTCOMES))[truth]
        records.append(
            {
                "contender": name,
                "outcome": "all (multiclass Brier)",
                "brier": float(((p - onehot) ** 2).sum(axis=1).mean()),
                "rows": float(len(truth)),
            }
        )
    return pd.DataFrame(records)


CHUNK = 100_000  # rows scored at once: bounded memory for a million deals


def no_decision(model, X: pd.DataFrame, chunk: int = CHUNK) -> np.ndarray:
    """P(no decision) per row, a chunk at a time: a linear model's design of a million rows
    would hold gigabytes at once."""
    if X.empty:
        return np.empty(0)
    parts = [model.predict_proba(X.iloc[s : s + chunk])[:, 1] for s in range(0, len(X), chunk)]
    return np.concatenate(parts)
