"""Compare contenders on the same test rows, overall, by snapshot age and by outcome."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.model.metrics import evaluate

# The deal's age at the snapshot (the age_days feature): known then; its share of its own life
# is not.
AGE_BANDS = {
    "early": (0.0, 30.0),
    "mid": (30.0, 90.0),
    "late": (90.0, np.inf),
}


def compare(rows: pd.DataFrame, contenders: dict[str, np.ndarray]) -> pd.DataFrame:
    """Metrics per contender and segment (all, and by the deal's age: under 30 days, 30 to 90,
    older); rows where every contender has a probability, so each is scored on the same rows."""
    have_all = np.all([~np.isnan(p) for p in contenders.values()], axis=0)
    frame = rows[have_all]
    records = []
    segments = {"all": np.ones(len(frame), dtype=bool)}
    for band, (low, high) in AGE_BANDS.items():
        segments[band] = ((frame["age_days"] >= low) & (frame["age_days"] < high)).to_numpy()
    for name, p in contenders.items():
        p = p[have_all]
        for segment, mask in segments.items():
            if mask.sum() == 0:
                continue
            records.append(
                {
                    "contender": name,
                    "segment": segment,
                    **evaluate(frame["label"].to_numpy()[mask], p[mask]),
                }
            )
    return pd.DataFrame(records)


def by_outcome(rows: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
    """Mean predicted win probability for each final outcome (won, lost, no_decision)."""
    return (
        pd.DataFrame({"outcome": rows["outcome"].to_numpy(), "p": p})
        .groupby("outcome")["p"]
        .agg(["count", "mean"])
        .rename(columns={"mean": "mean_probability"})
        .reset_index()
    )
