"""The forward test: the nightly situation replayed at past dates.

At each date T: the export as it stood then (`tables_as_of`), a model trained only on that with
the run's own recipe, every deal open at T scored, and the outcome read from the later export
(won within the model's horizon of T). Its calibration is what users of the nightly scores get;
out-of-fold scores of the labelled history, however carefully purged, are not the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dealscore.errors import DataError, InputError
from dealscore.features import build_features
from dealscore.features.asof import last_event, tables_as_of
from dealscore.features.baselines import crm_baselines
from dealscore.features.build import FeatureState
from dealscore.features.snapshots import history_start, label_horizon
from dealscore.model.estimator import RUNGS
from dealscore.model.ladder import Ladder
from dealscore.model.metrics import clustered_mean, evaluate, reliability_table, row_loss
from dealscore.progress import Progress, silent
from dealscore.schemas import CrmTables, Opportunities, Status
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID

POOLED = "pooled"
# The recipe's model (whichever rung it chose at each date), each rung of its ladder, the CRM's.
CONTENDERS = ("model", *RUNGS, "rep_forecast", "stage_probability")
EVERY_DAYS_BOUNDS = (14.0, 56.0)  # auto spacing of the dates: a tenth of the history, within


@dataclass(frozen=True)
class ForwardTest:
    rows: pd.DataFrame  # every deal scored: as_of, opportunity_id, horizon_days, label, contenders
    table: pd.DataFrame  # per date and pooled, per contender: metrics, mean predicted, actual
    skipped: dict[str, str] = field(default_factory=dict)  # date -> why it could not be replayed
    rungs: dict[str, str] = field(default_factory=dict)  # date -> the rung the recipe chose

    def pooled(self, contender: str = "model") -> dict[str, float]:
        """The pooled metrics of one contender (empty when it was not measured)."""
        row = self.table[(self.table["date"] == POOLED) & (self.table["contender"] == contender)]
        return {} if row.empty else row.iloc[0].drop(["date", "contender"]).to_dict()

    def reliability(self, contender: str = "model") -> pd.DataFrame:
        """Pooled reliability table: rows, mean predicted and observed win rate per bin."""
        return reliability_table(self.rows["label"].to_numpy(), self.rows[contender].to_numpy())

    def summary(self) -> str:
        """One line: pooled mean predicted vs actual, ECE and AUC of the model."""
        m = self.pooled()
        if not m:
            return "forward test: nothing scored"
        skipped = f"; skipped {', '.join(self.skipped)}" if self.skipped else ""
        rungs = ", ".join(sorted(set(self.rungs.values())))
        return (
            f"forward test ({int(m['rows']):,} open deals at {self.table['date'].nunique() - 1} "
            f"past dates, {rungs}): mean predicted {m['mean_predicted']:.3f} vs actual "
            f"{m['actual']:.3f}, ECE {m['ece']:.3f}, ROC AUC {m['roc_auc']:.3f}, "
            f"Brier {m['brier']:.3f}{skipped}"
        )

    def worse_than_simpler(self, rung: str, metric: str, tolerance: float) -> str:
        """Why the recipe's model, which scores with `rung` now, is worse on the forward test
        than a simpler rung: by more than `tolerance` in `metric` (lower is better) and by more
        than twice the standard error of the difference on these deals (so a few hundred deals
        cannot refuse a model by chance); "" when it is not. A model worse than a simpler rung
        is never promoted."""
        model = self.pooled()
        if not model or rung not in RUNGS:
            return ""
        for simpler in RUNGS[: RUNGS.index(rung)]:
            other = self.pooled(simpler)
            if not other:
                continue
            worse, se = model[metric] - other[metric], 0.0
            if {"model", simpler, "label", OPPORTUNITY_ID} <= set(self.rows.columns):
                rows = self.rows.dropna(subset=["model", simpler])
                y = rows["label"].to_numpy()
                worse, se = clustered_mean(
                    row_loss(y, rows["model"], metric) - row_loss(y, rows[simpler], metric),
                    rows[OPPORTUNITY_ID].to_numpy(),
                )
            if worse > max(tolerance, 2 * se):
                return (
                    f"worse than the simpler {simpler} rung on the forward test: {metric} "
                    f"{model[metric]:.4f} against {other[metric]:.4f} (more than the tolerance "
                    f"{tolerance:g} and twice the standard error, {2 * se:.4f})"
                )
        return ""


def default_dates(
    tables: CrmTables, count: int, every_days: float = 56.0, horizon_days: float = 0.0
) -> list[pd.Timestamp]:
    """The latest `count` dates, `every_days` apart (0: a tenth of the history, within 14..56
    days), whose label window (the horizon: the setting, else the auto horizon training at that
    date computes) ended by the export's last event; at midnight UTC, oldest first. Set by the
    export's dates, never by its outcomes."""
    last = last_event(tables)
    deals = tables.opportunities
    first = deals[Opportunities.created_at].min()
    if not every_days:
        span = (last - history_start(deals, last)) / pd.Timedelta(days=1)
        every_days = float(np.clip(round(span / 10), *EVERY_DAYS_BOUNDS))

    def window_ends(date: pd.Timestamp) -> pd.Timestamp:
        # The horizon training at `date` computes (deals won before it are all it can see).
        return date + pd.Timedelta(days=horizon_days or label_horizon(deals, date))

    dates: list[pd.Timestamp] = []
    date = (last - pd.Timedelta(days=horizon_days or label_horizon(deals, last))).floor("D")
    while len(dates) < count and date > first:
        if window_ends(date) <= last:
            dates.append(date)
            date -= pd.Timedelta(days=every_days)
        else:
            date -= pd.Timedelta(days=1)
    return sorted(dates)


Fit = Callable[[CrmTables], tuple[Ladder, FeatureState]]


def forward_test(
    tables: CrmTables,
    dates: list[pd.Timestamp],
    fit: Fit,
    horizon_days: float = 0.0,
    progress: Progress = silent,
) -> ForwardTest:
    """At each date, `fit` the export as it stood (the training recipe under test), score the
    deals open then, and read whether each was won within the horizon (0 = auto, as training
    computes it on that export) from the full export."""
    deals = tables.opportunities.set_index(Opportunities.opportunity_id)
    last = last_event(tables)
    parts, skipped, rungs = [], {}, {}
    for n, as_of in enumerate(dates, start=1):
        past = tables_as_of(tables, as_of)
        # The label horizon training at as_of would use: the auto one unless given.
        cutoff = last_event(past) + pd.Timedelta(microseconds=1)
        horizon = horizon_days or label_horizon(past.opportunities, cutoff)
        if as_of + pd.Timedelta(days=horizon) > last:
            raise InputError(
                f"forward test at {as_of:%Y-%m-%d}: its outcomes ({horizon:g} days on) are not "
                f"in the export yet (last event {last:%Y-%m-%d}); pick an earlier date"
            )
        progress(
            f"forward test, date {n} of {len(dates)}, at {as_of:%Y-%m-%d}: training on the "
            "export as it stood then"
        )
        try:
            ladder, state = fit(past)
        except ValueError as exc:  # too little history then: say so, replay the other dates
            skipped[f"{as_of:%Y-%m-%d}"] = str(exc)
            progress(f"forward test at {as_of:%Y-%m-%d}: skipped: {exc}")
            continue
        features = build_features(past, as_of, state)
        if features.empty:
            continue
        rungs[f"{as_of:%Y-%m-%d}"] = ladder.chosen
        keys = features[[OPPORTUNITY_ID, AS_OF]]
        crm = keys.merge(crm_baselines(past, keys), on=[OPPORTUNITY_ID, AS_OF], how="left")
        closed = keys[OPPORTUNITY_ID].map(deals[Opportunities.closed_at])
        won = keys[OPPORTUNITY_ID].map(deals[Opportunities.status]) == Status.WON.value
        parts.append(
            keys.assign(
                horizon_days=horizon,
                label=(won & (closed < as_of + pd.Timedelta(days=horizon))).astype(np.int64),
                rung=ladder.chosen,
                **ladder.predict(features, every=True),
                rep_forecast=crm["rep_probability"].to_numpy(dtype=float),
                stage_probability=crm["stage_probability"].to_numpy(dtype=float),
            )
        )
    if not parts:
        reasons = "; ".join(f"{date}: {why}" for date, why in skipped.items())
        raise DataError(f"forward test: nothing could be replayed ({reasons or 'no open deals'})")
    rows = pd.concat(parts, ignore_index=True)
    return ForwardTest(rows, forward_table(rows), skipped, rungs)


def forward_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per date and pooled, every contender measured on the rows all of them could score."""
    present = [c for c in CONTENDERS if c in rows and rows[c].notna().mean() > 0.5]
    rows = rows.dropna(subset=present)
    groups = [(f"{d:%Y-%m-%d}", part) for d, part in rows.groupby("as_of")] + [(POOLED, rows)]
    records = []
    for date, part in groups:
        y = part["label"].to_numpy()
        for contender in present:
            p = part[contender].to_numpy(dtype=float)
            records.append(
                {
                    "date": date,
                    "contender": contender,
                    **evaluate(y, p),
                    "mean_predicted": float(p.mean()),
                    "actual": float(y.mean()),
                }
            )
    return pd.DataFrame(records)
