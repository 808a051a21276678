"""The model card: what the model is, the data window, how it compares, and its known limits."""

from __future__ import annotations

import pandas as pd

METRICS = ["roc_auc", "pr_auc", "log_loss", "brier", "ece", "rows"]


def _table(frame: pd.DataFrame) -> str:
    """A Markdown table (no tabulate dependency)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = [
        "| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body])


def model_card(
    *,
    source: str,
    window: dict[str, pd.Timestamp],
    slice_rows: dict[str, int],
    comparison: pd.DataFrame,
    calibration: str,
    best_iteration: int,
    heroics: str,
    limits: list[str],
) -> str:
    """Markdown for a run's `model_card.md`."""
    overall = comparison[comparison["segment"] == "all"][["contender", *METRICS]]
    by_age = comparison.pivot(index="contender", columns="segment", values="roc_auc")
    by_age = by_age[[c for c in ("early", "mid", "late", "all") if c in by_age]].reset_index()
    lines = [
        "# dealscore win-probability model",
        "",
        (
            "Calibrated probability that an open B2B deal is won (lost and no-decision count as "
            "not won), from point-in-time features of the CRM history (docs/features.md)."
        ),
        "",
        "## Data",
        "",
        f"- Source: `{source}`",
        *[f"- {name.replace('_', ' ')}: {value}" for name, value in window.items()],
        "- Snapshot rows per slice: "
        + ", ".join(f"{name} {rows:,}" for name, rows in slice_rows.items()),
        "",
        "## Model",
        "",
        (
            f"- LightGBM, {best_iteration} boosting rounds (early-stopped on the validation "
            f"slice), {calibration} calibration fitted on the calibration slice only."
        ),
        f"- Heroic wins: {heroics}",
        "",
        "## Test slice: every contender on the same rows",
        "",
        _table(overall),
        "",
        "ROC AUC by snapshot age (early, mid, late third of a deal's life):",
        "",
        _table(by_age),
        "",
        "## Known limits",
        "",
        *[f"- {limit}" for limit in limits],
        "",
    ]
    return "\n".join(lines)
