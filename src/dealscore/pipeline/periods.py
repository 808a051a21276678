"""A period's deals and forecasts, the model's against the reps', and the backtest.

`open_deals`: every deal open at as_of with its amount then, P(won within the period) (the
won-this-quarter model when as_of lies in the period, else P(win) x P(close by the period's end
| win) from history's slips, features/horizon.py), whether it is due in the period, the rep's
latest call and what happened. `summarise`: on the deals due, the model against the reps'
commit, commit + best case and probability-weighted call, and the actual once over. `backtest`
replays past quarters through the quarter, each forecast whole (pipeline/quarter.py) at several
weeks by a model trained only on the history before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from dealscore.errors import DataError, InputError, require_features
from dealscore.features import build_features
from dealscore.features.asof import last_event, tables_as_of
from dealscore.features.build import FeatureState, snapshots_at
from dealscore.features.deal import amount_as_of
from dealscore.features.forecast import CATEGORY_PROBABILITY, latest_forecast, rep_probability
from dealscore.features.horizon import close_by, won_slips
from dealscore.features.pit import DAY, micros
from dealscore.model.estimator import WinProbabilityModel
from dealscore.pipeline.quarter import bookings, bounds, quarter_number, quarter_of
from dealscore.pipeline.training import (
    DataMinimumError,
    TrainResult,
    TrainSettings,
    fit_and_evaluate,
)
from dealscore.progress import Progress, silent
from dealscore.schemas import Accounts, CrmTables, Opportunities, Owners, Status
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID

FORECASTS = ["model", "rep_commit", "rep_commit_best_case", "rep_weighted"]
GROUPINGS = ("team", "owner", "segment")
TOTAL = "total"


def period_bounds(period: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """'2026Q3' -> (2026-07-01, 2026-10-01) in UTC: the start and the first instant after."""
    try:
        quarter = pd.Period(period.upper(), freq="Q")
    except (ValueError, TypeError) as exc:
        raise InputError(f"period must look like 2026Q3, got {period!r}") from exc
    return bounds(quarter)


def _names(tables: CrmTables, table: str, key: str, ids: pd.Series) -> pd.Series:
    """Each id's name from its table's optional `name` column; the id itself where none."""
    frame = tables.get(table)
    if frame is None or "name" not in frame:
        return ids
    return ids.map(frame.set_index(key)["name"]).fillna(ids)


def deal_labels(tables: CrmTables, ids: pd.Series) -> pd.DataFrame:
    """What a person needs to find a deal: its name, account, owner, stage and close date."""
    deals = tables.opportunities.set_index(Opportunities.opportunity_id)

    def column(name: str) -> pd.Series:
        return ids.map(deals[name]) if name in deals else pd.Series(None, index=ids.index)

    account = column(Opportunities.account_id)
    owner = column(Opportunities.owner_id)
    return pd.DataFrame(
        {
            "deal": _names(tables, "opportunities", Opportunities.opportunity_id, ids),
            "account": _names(tables, "accounts", Accounts.account_id, account),
            "owner": _names(tables, "owners", Owners.owner_id, owner),
            "stage": column(Opportunities.stage),
            "close_date": column(Opportunities.close_date),
        }
    )


def groups_of(tables: CrmTables, ids: pd.Series, by: str | None) -> np.ndarray:
    """Each deal's group for --by: its owner's team, its owner (by name), its industry."""
    deals = tables.opportunities.set_index(Opportunities.opportunity_id)
    if by is None:
        return np.full(len(ids), "all", dtype=object)
    if by not in GROUPINGS:
        raise InputError(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    owner = ids.map(deals[Opportunities.owner_id]) if Opportunities.owner_id in deals else None
    if by == "owner" and owner is not None:
        named = _names(tables, "owners", Owners.owner_id, owner)
        return named.fillna("(no owner)").to_numpy(dtype=object)
    if (
        by == "team"
        and owner is not None
        and tables.owners is not None
        and Owners.team in tables.owners
    ):
        team = owner.map(tables.owners.set_index(Owners.owner_id)[Owners.team])
        return team.fillna("(no team)").to_numpy(dtype=object)
    if by == "segment" and tables.accounts is not None and Accounts.industry in tables.accounts:
        account = ids.map(deals[Opportunities.account_id])
        industry = account.map(tables.accounts.set_index(Accounts.account_id)[Accounts.industry])
        return industry.fillna("(no industry)").to_numpy(dtype=object)
    raise DataError(f"the export has no data to group by {by}")


def rep_calls(tables: CrmTables, keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(category, probability) of each deal's latest rep forecast before its as_of; None and
    NaN where there is none (or the export has no forecasts)."""
    latest = latest_forecast(tables, snapshots_at(tables, keys))
    if latest is None:
        return np.full(len(keys), None, dtype=object), np.full(len(keys), np.nan)
    return latest["category"].to_numpy(dtype=object), rep_probability(latest, CATEGORY_PROBABILITY)


def expected_close(features: pd.DataFrame) -> np.ndarray:
    """Each deal's expected close as known at its as_of, in microseconds (NaN where none)."""
    return micros(features["as_of"]) + features["close_date_days_out"].to_numpy() * DAY


def due_in(expected: np.ndarray, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Whether each expected close (`expected_close`) falls in [start, end)."""
    start_us, end_us = micros(pd.Series([start, end])).tolist()
    return (expected >= start_us) & (expected < end_us)


def open_deals(
    tables: CrmTables,
    estimator: WinProbabilityModel,
    state: FeatureState,
    feature_names: list[str],
    period: str,
    as_of: pd.Timestamp | None = None,
    in_quarter: WinProbabilityModel | None = None,
) -> pd.DataFrame:
    """Per deal open at as_of: amount, the model's probabilities (ever, and within the period),
    whether its expected close falls in the period (`due`), the rep's call, and what happened.

    Within the period: the won-this-quarter model when as_of lies in the period (its label is
    "won before the end of as_of's quarter"), else P(win) x the slips of history."""
    start, end = period_bounds(period)
    as_of = start if as_of is None else as_of
    if as_of >= end:
        raise InputError(f"as_of {as_of} is not before the end of {period}")
    features = build_features(tables, as_of, state)
    expected = expected_close(features)
    end_us, as_of_us = micros(pd.Series([end, as_of])).tolist()
    due = due_in(expected, start, end)
    require_features("the win model", feature_names, features.columns)
    p_win = estimator.predict_proba(features[feature_names])[:, 1] if len(features) else np.empty(0)
    if in_quarter is not None and start <= as_of and len(features):
        # Its own inputs (feature_names_in_): the win model's and those built for it alone.
        require_features(
            "the won-this-quarter model", in_quarter.feature_names_in_, features.columns
        )
        p_in_period = in_quarter.predict_proba(features)[:, 1]
    else:
        # A deal without an expected close date: not due, and no slips to discount it by.
        slipped = close_by(won_slips(tables, as_of_us), expected, end_us, as_of_us)
        p_in_period = p_win * np.where(np.isnan(slipped), 0.0, slipped)
    category, rep_p = rep_calls(tables, features[[OPPORTUNITY_ID, AS_OF]])
    deals = tables.opportunities.set_index(Opportunities.opportunity_id)
    ids = features[OPPORTUNITY_ID]
    closed_at = ids.map(deals[Opportunities.closed_at])
    won_in_period = (ids.map(deals[Opportunities.status]) == Status.WON) & (closed_at < end)
    return pd.DataFrame(
        {
            OPPORTUNITY_ID: ids,
            "amount": np.nan_to_num(amount_as_of(features)),
            "p_win": p_win,
            "p_win_in_period": p_in_period,
            "due": due,
            "rep_category": category,
            "rep_probability": rep_p,
            "won_in_period": won_in_period.to_numpy(),
        }
    )


def summarise(deals: pd.DataFrame, groups: np.ndarray, closed: bool) -> pd.DataFrame:
    """Per group: deals, each forecast, the actual (for a closed period), errors and bias; with
    more than one group, a last row `total`."""
    frame = deals.assign(
        group=groups,
        model=deals["amount"] * deals["p_win_in_period"],
        rep_commit=deals["amount"] * (deals["rep_category"] == "commit"),
        rep_commit_best_case=deals["amount"] * deals["rep_category"].isin(["commit", "best_case"]),
        rep_weighted=deals["amount"] * deals["rep_probability"].fillna(0.0),
        actual=deals["amount"] * deals["won_in_period"],
    )
    table = frame.groupby("group").agg(
        deals=(OPPORTUNITY_ID, "size"), **{c: (c, "sum") for c in [*FORECASTS, "actual"]}
    )
    if len(table) > 1:
        table.loc[TOTAL] = table.sum()
    if closed:
        actual = table["actual"].where(table["actual"] > 0)
        for forecast in FORECASTS:
            table[f"{forecast}_error"] = table[forecast] - table["actual"]
            # Signed: the bias (above 0 over-forecasts); absolute: the accuracy.
            table[f"{forecast}_pct_error"] = table[f"{forecast}_error"] / actual
            table[f"{forecast}_abs_pct_error"] = table[f"{forecast}_pct_error"].abs()
    else:
        table["actual"] = np.nan
    return table.reset_index()


class NoHistoryError(DataError):
    """Not one of the periods asked for could be replayed: the history is too short."""


WEEKS = (0, 2, 4, 6, 8, 10, 12)  # the points of a quarter the backtest forecasts it at
JUDGED = ("model", "rep_commit", "rep_commit_best_case")  # the forecasts the accuracy covers


@dataclass(frozen=True)
class BacktestResult:
    """Past quarters forecast at several weeks into each by models that knew only the past."""

    # One row per quarter, week and forecast: period, week, as_of, forecast, amount, actual (the
    # quarter's total bookings). Forecasts: quarter.QuarterNumber.forecasts().
    forecasts: pd.DataFrame
    deals: pd.DataFrame  # every replayed open deal (open_deals rows) with its period and week
    skipped: dict[str, str] = field(default_factory=dict)  # period -> why no model then

    def wide(self) -> pd.DataFrame:
        """One row per quarter and week: each forecast as a column, and the actual."""
        table = self.forecasts.pivot_table(
            index=["period", "week", "as_of", "actual"],
            columns="forecast",
            values="amount",
            sort=False,
        )
        return table.reset_index().rename_axis(columns=None)

    def accuracy(self) -> pd.DataFrame:
        """Per week and forecast, over the quarters: the mean accuracy ratio (forecast /
        actual), absolute % error, bias and its standard error (NaN over one quarter); for the
        reps' rollups, in how many quarters the model was closer; for the model, in how many
        the actual fell in its range."""
        wide = self.wide()
        rows = []
        for week, at in wide.groupby("week", sort=True):
            model_error = (at["model"] - at["actual"]).abs()
            for forecast in JUDGED:
                if forecast not in at or at[forecast].isna().all():
                    continue
                ratio = at[forecast] / at["actual"].where(at["actual"] > 0)
                error = ratio - 1
                row = {
                    "week": int(week),
                    "forecast": forecast,
                    "quarters": int(ratio.notna().sum()),
                    "accuracy_ratio": float(ratio.mean()),
                    "abs_pct_error": float(error.abs().mean()),
                    "bias": float(error.mean()),
                    # How far a mean over a handful of quarters moves by chance: a bias within
                    # about one standard error of zero is not told apart from none.
                    "bias_se": float(error.sem()),
                    "in_green": int(((ratio >= 0.85) & (ratio <= 1.15)).sum()),
                }
                if forecast == "model":
                    inside = (at["actual"] >= at["model_low"]) & (at["actual"] <= at["model_high"])
                    row["in_range"] = int(inside.sum())
                else:
                    row["model_closer"] = int(
                        (model_error < (at[forecast] - at["actual"]).abs()).sum()
                    )
                rows.append(row)
        return pd.DataFrame(rows)


def last_closed_periods(tables: CrmTables, count: int) -> list[str]:
    """The `count` latest calendar quarters that ended before the export's last event."""
    current = quarter_of(last_event(tables))
    return [str(current - k) for k in range(count, 0, -1)]


def _prefixed(progress: Progress, period: str) -> Progress:
    """The training job's own progress lines, each marked with the quarter it is for."""
    return lambda message: progress(f"{period}: {message}")


def _replayed_weeks(
    tables: CrmTables, trained: TrainResult, period: str, weeks: tuple[int, ...]
) -> tuple[list[dict], list[pd.DataFrame]]:
    """One quarter forecast at each of `weeks` into it by the model trained before it: the
    forecasts' rows (against the quarter's total bookings) and the open deals of each week."""
    start, end = period_bounds(period)
    actual = bookings(tables, start, end)
    rows, all_deals = [], []
    for week in weeks:
        as_of = start + pd.Timedelta(days=7 * week)
        if as_of >= end:
            continue
        deals = open_deals(
            tables,
            trained.model,
            trained.feature_state,
            list(trained.model.feature_names_in_),
            period,
            as_of,
            in_quarter=trained.in_quarter,
        )
        number = quarter_number(tables, as_of, deals, trained.in_quarter_error)
        rows += [
            {
                "period": period,
                "week": week,
                "as_of": as_of,
                "forecast": name,
                "amount": amount,
                "actual": actual,
            }
            for name, amount in number.forecasts().items()
        ]
        all_deals.append(deals.assign(period=period, week=week))
    return rows, all_deals


def backtest(
    tables: CrmTables,
    periods: int = 8,
    settings: TrainSettings | None = None,
    progress: Progress = silent,
    weeks: tuple[int, ...] = WEEKS,
) -> BacktestResult:
    """Each of the last `periods` closed quarters forecast whole (quarter.quarter_number) at
    each of `weeks` into it, against its total bookings. One model per quarter, trained only on
    the history before its start, serves all its weeks: it knew less than each week's date
    allows, never more. Features, the rep calls and the not-yet-created part are as of each
    week's date."""
    # Only the win and won-this-quarter models forecast a quarter: the contenders are skipped.
    settings = replace(
        settings or TrainSettings(),
        track=False,
        forward_dates=0,
        independent_contender=False,
        outcome_model=False,
    )
    rows, all_deals, skipped = [], [], {}
    first = tables.opportunities[Opportunities.created_at].min()
    quarters = last_closed_periods(tables, periods)
    for n, period in enumerate(quarters, start=1):
        start = period_bounds(period)[0]
        if start <= first:
            skipped[period] = f"it starts before the export's first deal ({first:%Y-%m-%d})"
            progress(f"{period}: skipped: {skipped[period]}")
            continue
        progress(
            f"quarter {n} of {len(quarters)}, {period}: training on the history before "
            f"{start:%Y-%m-%d}"
        )
        try:
            # The export as it stood at the quarter's start, and known to stand there: the
            # quarter before is over, its won-this-quarter labels known.
            trained = fit_and_evaluate(
                tables_as_of(tables, start),
                settings,
                progress=_prefixed(progress, period),
                cutoff=start,
            )
        except DataMinimumError as exc:  # too little history then: the later periods still count
            skipped[period] = str(exc)
            progress(f"{period}: skipped: {exc}")
            continue
        quarter_rows, deals = _replayed_weeks(tables, trained, period, weeks)
        rows += quarter_rows
        all_deals += deals
        progress(f"{period}: forecast at weeks {', '.join(map(str, weeks))}")
    if not rows:
        raise NoHistoryError(
            "backtest: no period had enough history to train on; "
            + "; ".join(f"{p}: {why}" for p, why in skipped.items())
        )
    return BacktestResult(pd.DataFrame(rows), pd.concat(all_deals, ignore_index=True), skipped)
