"""How the scores we wrote turned out: the score history joined with the export's outcomes.

A written score is (deal, as_of, P(won within H days)). Its outcome is known once as_of + H has
passed by the export's own time; until then it is pending, whatever the deal did meanwhile
(counting the windows that resolved early would pick rows by their future: quick wins in,
slow deals out). Deals the export no longer holds are counted and named, never taken for
losses. Won, lost and no decision within H are read as training labels them
(features/snapshots.py): lost within the window is lost; the rest, closed as no decision or
still undecided when the window ended, is no decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dealscore.errors import InputError
from dealscore.features.forecast import CATEGORY_PROBABILITY, latest_forecast, rep_probability
from dealscore.features.pit import Snapshots, micros
from dealscore.model.metrics import chance_ece, evaluate
from dealscore.schemas.features import OPPORTUNITY_ID
from dealscore.schemas.tables import CrmTables, Opportunities, Status

ELAPSED, PENDING, GONE = "elapsed", "pending", "gone"
# The groups a monitor table has, in its `by` column; `group` holds the value.
POOLED, NIGHT, MONTH, BAND, VERSION = "pooled", "as_of", "month", "band", "model_version"
GROUPINGS = (POOLED, VERSION, BAND, MONTH, NIGHT)
# (probability column of the score history, outcome column, prefix in the monitor table)
OUTCOMES = (
    ("win_probability", "won", ""),
    ("lost_probability", "lost", "lost_"),
    ("no_decision_probability", "no_decision", "no_decision_"),
)


def scored_outcomes(
    history: pd.DataFrame,
    tables: CrmTables,
    now: pd.Timestamp,
    horizon_days: float | None = None,
) -> pd.DataFrame:
    """Each written score with its window's end, its state (elapsed, pending, gone) and, when
    elapsed, won/lost/no_decision within the window, and the rep's latest call before as_of
    (NaN where there is none). `horizon_days` stands in for rows that do not say their own.
    `history` is `ScoreHistory` rows, as the stores' history() returns them (validated there)."""
    horizon = history["horizon_days"].fillna(horizon_days if horizon_days else np.nan)
    if horizon.isna().any():
        raise InputError(
            f"{int(horizon.isna().sum()):,} written scores do not say their horizon (written "
            "before dealscore kept it, e.g. model version "
            f"{history.loc[horizon.isna(), 'model_version'].iloc[0]}): give --horizon-days, "
            "the label window those models were trained on"
        )
    deals = tables.opportunities.set_index(Opportunities.opportunity_id)
    present = history[OPPORTUNITY_ID].isin(deals.index).to_numpy()
    ends = history["as_of"] + pd.to_timedelta(horizon.to_numpy(), unit="D")
    elapsed = present & (ends <= now).to_numpy()
    status = history[OPPORTUNITY_ID].map(deals[Opportunities.status]).astype(object)
    closed_at = history[OPPORTUNITY_ID].map(deals[Opportunities.closed_at])
    within = (closed_at.notna() & (closed_at < ends)).to_numpy()
    won = within & (status == Status.WON.value).to_numpy()
    lost = within & (status == Status.LOST.value).to_numpy()
    known = np.where(elapsed, 1.0, np.nan)
    return history.assign(
        window_end=ends,
        state=np.where(~present, GONE, np.where(elapsed, ELAPSED, PENDING)),
        won=known * won,
        lost=known * lost,
        no_decision=known * (~won & ~lost),
        rep_probability=_rep_calls(history, tables, present),
    )


def state_counts(outcomes: pd.DataFrame) -> dict[str, int]:
    """Written scores by state: elapsed, pending, gone."""
    states = outcomes["state"].value_counts()
    return {state: int(states.get(state, 0)) for state in (ELAPSED, PENDING, GONE)}


def _rep_calls(history: pd.DataFrame, tables: CrmTables, present: np.ndarray) -> np.ndarray:
    """The rep's probability from their latest forecast strictly before each score's as_of."""
    out = np.full(len(history), np.nan)
    ids = pd.Index(tables.opportunities[Opportunities.opportunity_id])
    rows = history[present]
    snaps = Snapshots(ids.get_indexer(rows[OPPORTUNITY_ID]), micros(rows["as_of"]), ids)
    latest = latest_forecast(tables, snaps)
    if latest is not None:
        out[present] = rep_probability(latest, CATEGORY_PROBABILITY)
    return out


COLUMNS = [
    "by",
    "group",
    "rows",
    "pending",
    "gone",
    "mean_predicted",
    "won",
    "ece",
    "brier",
    "roc_auc",
]
BINS = 10  # equal-width probability bins of the ECE, as model.metrics


def _grouped(frame: pd.DataFrame, keys: list[str], column: str, outcome: str) -> pd.DataFrame:
    """Per group, over the rows that have `column`: rows, mean predicted, actual rate, ECE,
    Brier and ROC AUC, all groups at once (a year of nights is hundreds of groups). ECE as
    model.metrics computes it; ROC AUC as Mann-Whitney's U over average ranks (ties count half)."""
    known = frame[frame[column].notna()]
    p, y = known[column].to_numpy(dtype=float), known[outcome].to_numpy(dtype=float)
    rows = known[keys].assign(
        p=p,
        y=y,
        sq=(p - y) ** 2,
        bin=np.clip(np.digitize(p, np.linspace(0, 1, BINS + 1)[1:-1]), 0, BINS - 1),
    )
    groups = rows.groupby(keys, sort=False)
    out = groups.agg(
        rows=("p", "size"), mean_predicted=("p", "mean"), actual=("y", "mean"), brier=("sq", "mean")
    )
    per_bin = rows.groupby([*keys, "bin"], sort=False)[["p", "y"]].sum()
    gap = (per_bin["y"] - per_bin["p"]).abs().groupby(level=keys, sort=False).sum()
    out["ece"] = gap.reindex(out.index) / out["rows"]
    rank = groups["p"].rank(method="average")
    positives = rows.assign(r=rank.where(rows["y"] == 1)).groupby(keys, sort=False)
    n1 = positives["y"].sum().reindex(out.index)
    n0 = out["rows"] - n1
    u = positives["r"].sum().reindex(out.index) - n1 * (n1 + 1) / 2
    out["roc_auc"] = (u / (n1 * n0)).where((n1 > 0) & (n0 > 0))
    return out


def monitor_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """One row per group (pooled, each model version, band, month and as-of night): the scores'
    realised calibration and discrimination for each outcome and the reps' calls, over the
    elapsed scores, with the pending and gone counts beside them."""
    keyed = outcomes.assign(
        **{
            POOLED: POOLED,
            NIGHT: outcomes["as_of"].dt.strftime("%Y-%m-%d"),
            MONTH: outcomes["as_of"].dt.strftime("%Y-%m"),
        }
    )
    # Every row once per grouping: one groupby serves them all.
    long = pd.concat(
        [keyed.assign(by=by, group=keyed[by].astype(str)) for by in GROUPINGS],
        ignore_index=True,
    )
    keys = ["by", "group"]
    table = (
        long.assign(pending=long["state"] == PENDING, gone=long["state"] == GONE)
        .groupby(keys, sort=False)[["pending", "gone"]]
        .sum()
    )
    done = long[long["state"] == ELAPSED]
    for column, outcome, prefix in (*OUTCOMES, ("rep_probability", "won", "rep_")):
        part = _grouped(done, keys, column, outcome)
        names = {name: prefix + name for name in part.columns}
        names["actual"] = prefix + outcome if prefix == "rep_" else outcome
        table = table.join(part.rename(columns=names), how="left")
    table["rows"] = table["rows"].fillna(0)
    counts = [c for c in table.columns if c.endswith("rows") or c in ("pending", "gone")]
    table[counts] = table[counts].astype("Int64")
    table = table.reset_index()
    order = table["by"].map({by: k for k, by in enumerate(GROUPINGS)})
    table = table.assign(_order=order).sort_values(["_order", "group"], ignore_index=True)
    return table[COLUMNS + [c for c in table.columns if c not in [*COLUMNS, "_order"]]]


@dataclass(frozen=True)
class Realised:
    """The champion's realised calibration over its last elapsed nights."""

    nights: int
    rows: int
    deals: int
    mean_predicted: float
    won: float
    ece: float
    chance: float  # the ECE chance alone gives on that many deals (95th percentile)

    def describe(self) -> str:
        return (
            f"realised ECE {self.ece:.3f} over the last {self.nights} elapsed nights "
            f"({self.rows:,} scores of {self.deals:,} deals: predicted {self.mean_predicted:.3f}, "
            f"won {self.won:.3f}; chance alone gives up to {self.chance:.3f})"
        )


def realised(outcomes: pd.DataFrame, model_version: str, nights: int) -> Realised | None:
    """Calibration of one model version's scores over its last `nights` elapsed as-of nights;
    None when none has elapsed. Chance is measured on one score per deal: the same deal scored
    every night is one outcome, not many."""
    mine = outcomes[(outcomes["model_version"] == model_version) & (outcomes["state"] == ELAPSED)]
    if mine.empty:
        return None
    night = mine["as_of"].dt.floor("D")
    last = np.sort(night.unique())[-nights:]
    rows = mine[night.isin(last)]
    y, p = rows["won"].to_numpy(dtype=int), rows["win_probability"].to_numpy(dtype=float)
    once = rows.sort_values("as_of").drop_duplicates(OPPORTUNITY_ID, keep="last")
    return Realised(
        nights=len(last),
        rows=len(rows),
        deals=len(once),
        mean_predicted=float(p.mean()),
        won=float(y.mean()),
        ece=evaluate(y, p)["ece"],
        chance=chance_ece(once["win_probability"].to_numpy(dtype=float)),
    )


def retrain_reasons(
    age_days: float | None,
    every_days: float,
    check: Realised | None,
    max_ece: float,
    drift: tuple[str, ...] = (),
) -> list[str]:
    """Why a challenger should be trained now; empty when the champion stands. Age: days from
    its training cut-off to as_of (None: unknown, so due); realised ECE above both the limit and
    what chance gives on as many deals; any drift warning."""
    reasons = []
    if age_days is None:
        reasons.append("the champion's training date is unknown")
    elif age_days > every_days:
        reasons.append(
            f"the champion learned from data {age_days:,.0f} days old (retrain_every_days "
            f"{every_days:g})"
        )
    if check is not None and check.ece > max(max_ece, check.chance):
        reasons.append(f"{check.describe()}, above max_realised_ece {max_ece:g}")
    reasons.extend(f"drift: {warning}" for warning in drift)
    return reasons
