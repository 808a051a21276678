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


def _section(title: str, *paragraphs: str) -> list[str]:
    """A `## title` section: each paragraph (text, a list or a table) followed by a blank line."""
    return [f"## {title}", "", *(line for paragraph in paragraphs for line in (paragraph, ""))]


FORWARD_METRICS = ["roc_auc", "brier", "log_loss", "ece", "mean_predicted", "actual", "rows"]


def model_card(
    *,
    source: str,
    window: dict[str, pd.Timestamp],
    fold_rows: dict[str, int],
    comparison: pd.DataFrame,
    model: str,
    heroics: str,
    limits: list[str],
    horizon_days: float | None = None,
    forward: pd.DataFrame | None = None,
    rep_inputs: bool = True,
    outcomes: pd.DataFrame | None = None,
) -> str:
    """Markdown for a run's `model_card.md`."""
    lines = [
        *_summary(horizon_days),
        *_data(source, window, fold_rows),
        *_model(model, heroics, rep_inputs),
        *_comparison(comparison),
        *(_forward(forward) if forward is not None else []),
        *(_outcomes(outcomes) if outcomes is not None else []),
        "## Known limits",
        "",
        *[f"- {limit}" for limit in limits],
        "",
    ]
    return "\n".join(lines)


def _summary(horizon_days: float | None) -> list[str]:
    """The title and what the model's probability means."""
    return [
        "# dealscore win-probability model",
        "",
        (
            "Calibrated probability that an open B2B deal is won"
            + (f" within {horizon_days:g} days of the as-of date" if horizon_days else "")
            + " (lost, no-decision and still open count as not won), from point-in-time "
            "features of the CRM history (docs/features.md)."
        ),
        "",
    ]


def _data(source: str, window: dict[str, pd.Timestamp], fold_rows: dict[str, int]) -> list[str]:
    """Where the data came from, its window and the rows per time fold."""
    return _section(
        "Data",
        "\n".join(
            [
                f"- Source: `{source}`",
                *[f"- {name.replace('_', ' ')}: {value}" for name, value in window.items()],
                "- Labelled snapshot rows per time fold, oldest first (the newest fold is the "
                "test rows): " + ", ".join(f"{name} {rows:,}" for name, rows in fold_rows.items()),
            ]
        ),
    )


def _model(model: str, heroics: str, rep_inputs: bool) -> list[str]:
    """What scores, what the heroic-win rule did, and whether the reps' forecasts are inputs."""
    inputs = (
        "- Inputs: the CRM history and the reps' own forecasts (the model learns how far to "
        "trust each rep). `model_without_reps` below is the same recipe without the reps' "
        "forecasts: an opinion independent of the reps, and the gap between the two is what "
        "the reps' calls add."
        if rep_inputs
        else "- Inputs: the CRM history only (rep_inputs = false): the reps' forecasts are not "
        "used, so the model is an opinion independent of the reps."
    )
    return _section("Model", f"- Scored by {model}\n- Heroic wins: {heroics}\n{inputs}")


def _comparison(comparison: pd.DataFrame) -> list[str]:
    """Every contender on the newest fold, overall and by the deal's age."""
    overall = comparison[comparison["segment"] == "all"][["contender", *METRICS]]
    by_age = comparison.pivot(index="contender", columns="segment", values="roc_auc")
    by_age = by_age[[c for c in ("early", "mid", "late", "all") if c in by_age]].reset_index()
    return _section(
        "Newest fold: every contender on the same rows, out of fold",
        _table(overall),
        "ROC AUC by the deal's age at the snapshot (early < 30 days, mid 30-90, late > 90):",
        _table(by_age),
    )


def _forward(forward: pd.DataFrame) -> list[str]:
    """The forward test's table."""
    return _section(
        "Forward test: what the nightly scores were worth",
        "At each past date: the export as it stood then, a model trained only on it with this "
        "recipe, every deal open then scored, outcomes read from the later export.",
        _table(forward[["date", "contender", *FORWARD_METRICS]]),
    )


def _outcomes(outcomes: pd.DataFrame) -> list[str]:
    """The three outcomes against P(won) with a flat split of the rest."""
    return _section(
        "Three outcomes: won, lost, no decision",
        "P(no decision) and P(lost) split 1 - P(won) by a second model of how the deals not won "
        "within the horizon end (no decision: closed as such, or still undecided at the "
        "horizon). Against P(won) with the rest split by the training share of no decisions "
        "(`*_flat_split`), on the test rows:",
        _table(outcomes.astype(object).where(outcomes.notna(), "")),
    )
