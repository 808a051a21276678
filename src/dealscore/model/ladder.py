"""The model ladder: every rung fitted on the same rows and time folds; the data picks one.

Rungs go from the history's win rate, through what the CRM itself says (stage, forecast
category, its probability) and a logistic regression, to LightGBM (model/estimator.py). Each is
judged by its out-of-fold log loss, every rung on the same rows, with two adjustments:
- each fold's scores are first moved to that fold's own win rate (one shift in log-odds per
  fold, the same for every rung): the win rate moves from season to season, and that level is
  the recent correction's business (model/recent.py), not a reason to prefer a rung that ranks
  nothing over one that ranks well;
- newer folds weigh more (`TimeFolds.recency`): the next months resemble them most.
Walking up from the simplest, a rung replaces the one chosen so far only if it beats it by more
than `tolerance` and by more than one standard error of the difference (counted over deals,
whose rows are not independent): a small history gets the simplest rung it cannot honestly
improve on, never a coin flip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from dealscore.model.estimator import CRM_COLUMNS, RUNGS, Rung, WinProbabilityModel
from dealscore.model.metrics import clustered_mean, row_loss
from dealscore.model.scorers import logit, sigmoid
from dealscore.model.split import TimeFolds

Say = Callable[[str], None]  # a progress callback (the model layer stays below `progress`)


@dataclass(frozen=True)
class Ladder:
    """The fitted rungs, simplest first, and the one chosen with why."""

    models: dict[str, WinProbabilityModel]
    chosen: str
    losses: dict[str, float]  # out-of-fold log loss of each rung, on the rows all of them cover
    reason: str
    skipped: dict[str, str] = field(default_factory=dict)  # rung -> why it was not fitted

    @property
    def model(self) -> WinProbabilityModel:
        return self.models[self.chosen]

    def simpler(self, than: str | None = None) -> list[str]:
        """The fitted rungs simpler than `than` (default: the chosen one)."""
        names = list(self.models)
        return names[: names.index(than or self.chosen)]

    def predict(self, X: pd.DataFrame, every: bool = False) -> dict[str, np.ndarray]:
        """Each fitted rung's win probabilities, and the chosen one's as "model". `every`: also
        each rung that was not fitted, as the simpler rung that stands in for it."""
        out = {name: m.predict_proba(X)[:, 1] for name, m in self.models.items()}
        if every:
            last = None
            for rung in RUNGS:
                last = rung if rung in out else last
                if last is not None:
                    out[rung] = out[last]
        return {"model": out[self.chosen], **out}

    def oof(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Each rung's out-of-fold probabilities (at `rows`), and the chosen one's as "model"."""
        take = slice(None) if rows is None else rows
        out = {name: m.oof_[take] for name, m in self.models.items()}
        return {"model": out[self.chosen], **out}


def _at_fold_level(y: np.ndarray, p: np.ndarray, block: np.ndarray) -> np.ndarray:
    """`p` moved, fold by fold, by the one log-odds shift that fits that fold's win rate."""
    out = np.empty(len(p))
    raw = logit(p)
    for b in np.unique(block):
        rows = block == b
        shift = minimize_scalar(
            lambda a, r=raw[rows], t=y[rows]: row_loss(t, sigmoid(r + a)).mean(),
            bounds=(-5.0, 5.0),
            method="bounded",
        ).x
        out[rows] = sigmoid(raw[rows] + shift)
    return out


def choose(
    y: np.ndarray,
    oof: dict[str, np.ndarray],
    groups: np.ndarray,
    tolerance: float,
    block: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> tuple[str, dict[str, float], str]:
    """(the chosen rung, each rung's out-of-fold log loss, why), on the rows every rung covers,
    each fold at its own level (`block`: per row, its fold) and rows weighted by `weight`;
    `oof` lists the rungs simplest first."""
    covered = np.all([np.isfinite(p) for p in oof.values()], axis=0)
    y, groups = y[covered], groups[covered]
    block = np.zeros(len(y), dtype=int) if block is None else np.asarray(block)[covered]
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=float)[covered]
    losses_by_row = {
        name: row_loss(y, _at_fold_level(y, p[covered], block)) for name, p in oof.items()
    }
    losses = {name: float(np.average(loss, weights=w)) for name, loss in losses_by_row.items()}
    names = list(oof)
    chosen, reason = names[0], f"{names[0]}: the simplest rung"
    for name in names[1:]:
        gain, se = clustered_mean(losses_by_row[chosen] - losses_by_row[name], groups, w)
        verdict = (
            f"{name} out-of-fold log loss {losses[name]:.4f} against {losses[chosen]:.4f} for "
            f"{chosen}"
        )
        if gain > max(tolerance, se):
            chosen, reason = (
                name,
                f"{verdict}: better by {gain:.4f}, more than the tolerance {tolerance:g} "
                f"and one standard error ({se:.4f})",
            )
        else:
            reason += f"; {verdict}: not better by more than {max(tolerance, se):.4f}"
    rows = f" ({int(covered.sum()):,} out-of-fold rows)"
    return chosen, losses, reason + rows


def fit_ladder(
    X: pd.DataFrame,
    y: np.ndarray,
    folds: TimeFolds,
    weight: np.ndarray,
    groups: np.ndarray,
    make: Callable[[Rung], WinProbabilityModel],
    rungs: Sequence[Rung] = RUNGS,
    tolerance: float = 0.002,
    progress: Say = lambda _: None,
    callbacks: Callable[[str], Sequence[Callable[..., None]]] = lambda _: (),
    refit: bool = True,
) -> Ladder:
    """Fit each rung of `rungs` (simplest first) with `make(rung)`, skipping those the data
    cannot fit, and choose among them (`choose`). `callbacks(rung)` gives a rung's LightGBM
    callbacks (progress from inside the boosting); `refit` false: out-of-fold only."""
    models: dict[str, WinProbabilityModel] = {}
    skipped: dict[str, str] = {}
    y = np.asarray(y).astype(int)
    for rung in [r for r in RUNGS if r in rungs]:
        if rung == "crm_rates" and not X.reindex(columns=list(CRM_COLUMNS)).notna().any().any():
            skipped[rung] = "the export has no stage, forecast category or CRM probability"
            continue
        progress(f"cross-fitting {rung} over {folds.k} time folds")
        try:
            models[rung] = make(rung).fit(
                X, y, folds=folds, sample_weight=weight, callbacks=callbacks(rung), refit=refit
            )
        except ValueError as exc:
            skipped[rung] = str(exc)
            progress(f"{rung} not fitted: {exc}")
    if not models:
        reasons = "; ".join(f"{rung}: {why}" for rung, why in skipped.items())
        raise ValueError(f"no rung of the model ladder could be fitted ({reasons})")
    chosen, losses, reason = choose(
        y,
        {name: m.oof_ for name, m in models.items()},
        np.asarray(groups),
        tolerance,
        folds.block,
        folds.recency(),
    )
    return Ladder(models, chosen, losses, reason, skipped)
