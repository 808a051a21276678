"""PNG figures for a training run: reliability, ROC, lift and feature importance."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never a display

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from dealscore.model.metrics import lift_by_decile, reliability_table


def reliability_figure(
    y: np.ndarray,
    contenders: dict[str, np.ndarray],
    title: str = "Reliability on the newest fold (out of fold)",
) -> Figure:
    """Observed win rate against mean predicted probability per bin, one line per contender."""
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for name, p in contenders.items():
        table = reliability_table(y, p)
        ax.plot(table["predicted"], table["observed"], marker="o", label=name)
    ax.set(
        xlabel="mean predicted win probability",
        ylabel="observed win rate",
        xlim=(0, 1),
        ylim=(0, 1),
        title=title,
    )
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def roc_figure(y: np.ndarray, contenders: dict[str, np.ndarray]) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    for name, p in contenders.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title="ROC, newest fold (out of fold)",
    )
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig


def lift_figure(y: np.ndarray, p: np.ndarray) -> Figure:
    """Win rate by decile of the model's probability, best decile first."""
    table = lift_by_decile(y, p)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(table["decile"], table["observed"], color="tab:blue", label="observed win rate")
    ax.plot(table["decile"], table["predicted"], color="tab:orange", marker="o", label="predicted")
    ax.axhline(float(np.mean(y)), color="grey", linestyle=":", label="overall win rate")
    ax.set(xlabel="decile (1 = highest probability)", ylabel="win rate", title="Lift by decile")
    ax.set_xticks(table["decile"])
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def importance_figure(importance: pd.Series, top: int = 25) -> Figure:
    """Total gain per feature, the top ones."""
    shown = importance.sort_values().tail(top)
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(shown))))
    ax.barh(shown.index, shown.to_numpy(), color="tab:blue")
    ax.set(xlabel="total gain", title=f"Feature importance (top {len(shown)})")
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
