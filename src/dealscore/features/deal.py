"""Deal dynamics as of T: age, stage and its timing, regressions, slips, discounts, quarter ends."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.features import activity_pass
from dealscore.features.catalogue import family
from dealscore.features.pit import (
    DAY,
    Snapshots,
    asof_by_key,
    asof_global,
    asof_state,
    micros,
    quarter_end_micros,
)
from dealscore.schemas.keys import lookup
from dealscore.schemas.tables import CrmTables, Opportunities, StageHistory, Status

FEATURES = family(
    "deal",
    ("opportunities", "stage_history"),
    age_days="days since the deal was created",
    age_vs_won_cycle="age over the typical (geometric mean) cycle of deals won before as_of",
    stage_rank="rank of the current stage in the fitted stage order (typical order of entry)",
    crm_probability="the CRM's own win probability for the deal (stage history: the stage's "
    "default, or a rep's override)",
    days_in_stage="days since the deal entered its current stage",
    stage_time_vs_won="days in the current stage over what won deals spent in it, before as_of",
    stage_regressions="times the deal moved back to an earlier stage",
    close_date_pushes="times the expected close date moved later",
    total_slip_days="days the expected close date moved since the first one",
    close_date_days_out="days from as_of to the expected close date (negative: overdue)",
    amount_log="log10(1 + current amount)",
    amount_change_pct="current amount over the first recorded amount, minus 1 (discounts < 0)",
    late_entry="1 if the deal's first stage was late in the process (proposal or later)",
    days_to_quarter_end="days from as_of to the end of its calendar quarter",
    close_in_quarter_last_weeks="1 if the expected close date sits in the last 3 weeks of a quarter",
    moved_into_quarter_end="1 if the close date was moved into the last 3 weeks of a quarter",
    close_date_in_past_quarter="1 if the expected close date lies in a quarter already over (it "
    "slipped past a quarter end and was not re-dated yet)",
)
# Read by the won-this-quarter model alone: whether a deal is won before the quarter ends turns
# on where its expected close sits against that end, a diagonal of the two columns above that
# trees and a linear reading of each approximate poorly; and on the week of the quarter, which
# the linear rung reads as one level per week (a line in the days left gave the last weeks too
# many wins and the middle too few). Winning ever does not (docs/forecast.md).
QUARTER_FEATURES = family(
    "deal",
    ("opportunities", "stage_history"),
    close_room_days="days from the expected close date to the end of as_of's quarter (negative: "
    "expected in a later quarter)",
    quarter_week="whole weeks left in as_of's quarter: 0 in its last week, 12 in its first",
)
NAMES = [f.name for f in (*FEATURES, *QUARTER_FEATURES)]
# Set by the calendar alone: one scoring date gives every deal nearly the same value, so their
# shift from training's spread of dates is no sign of drift.
CALENDAR_FEATURES = ("days_to_quarter_end",)
QUARTER_WEEKS = 12  # the highest quarter_week: 84 days or more left
LATE_SHARE = 0.6  # entering 60% of the way through the open stages: proposal or negotiation of five
PRIOR_CYCLE_DAYS = 60.0


def amount_as_of(features: pd.DataFrame) -> np.ndarray:
    """Each row's amount as of its as_of, from its `amount_log` (NaN where not known)."""
    return 10 ** features["amount_log"].to_numpy(dtype=float) - 1


def stage_order(
    history: pd.DataFrame, opportunities: pd.DataFrame, before: pd.Timestamp
) -> dict[str, int]:
    """Stage rank by the median position of its first entry within deals, from rows before a cut-off.

    Closing rows (at the deal's closed_at) are left out: a closed stage is never an open deal's.
    """
    closed = opportunities.set_index(Opportunities.opportunity_id)[Opportunities.closed_at]
    closes = lookup(history[StageHistory.opportunity_id], closed)
    rows = history[
        (history[StageHistory.changed_at] < before) & ~(history[StageHistory.changed_at] >= closes)
    ]
    first = rows.sort_values(StageHistory.changed_at, kind="stable").drop_duplicates(
        [StageHistory.opportunity_id, StageHistory.stage]
    )
    position = first.groupby(StageHistory.opportunity_id).cumcount()
    ranks = position.groupby(first[StageHistory.stage]).median().rank(method="dense") - 1
    return {str(stage): int(rank) for stage, rank in ranks.items()}


def deal_features(tables: CrmTables, snaps: Snapshots, stages: dict[str, int]) -> pd.DataFrame:
    """Deal-dynamics features for each snapshot."""
    deals = tables.opportunities
    created = micros(deals[Opportunities.created_at])
    closed_at = deals[Opportunities.closed_at]
    as_of = snaps.as_of
    age = (as_of - created[snaps.deal]) / DAY
    out = pd.DataFrame({"age_days": age})

    # Typical won cycle, from deals won strictly before as_of (geometric mean of cycle days).
    won = (deals[Opportunities.status] == Status.WON).to_numpy() & closed_at.notna().to_numpy()
    won_closed = micros(closed_at[won])
    won_cycle = np.maximum((won_closed - created[won]) / DAY, 0.5)
    cum = asof_global(as_of, won_closed, {"n": np.ones(won.sum()), "log": np.log(won_cycle)})
    typical = np.where(
        cum["n"] > 0,
        np.exp((cum["log"] + 3 * np.log(PRIOR_CYCLE_DAYS)) / (cum["n"] + 3)),
        PRIOR_CYCLE_DAYS,
    )
    out["age_vs_won_cycle"] = age / typical
    quarter_end = quarter_end_micros(as_of)
    out["days_to_quarter_end"] = (quarter_end - as_of) / DAY
    # A 92-day quarter's first day counts in its first week: a level of a few rows says nothing.
    out["quarter_week"] = np.clip(np.floor(out["days_to_quarter_end"] / 7), 0, QUARTER_WEEKS)

    history = tables.stage_history
    if history is None:
        out["amount_log"] = (
            np.log10(1 + deals[Opportunities.amount].to_numpy()[snaps.deal])
            if Opportunities.amount in deals
            else np.nan
        )
        return out.reindex(columns=NAMES)
    return _history_features(out, history, snaps, won, closed_at, stages)


STATE_COLUMNS = [
    "rank",
    "probability",
    "amount",
    "close",
    "regressions",
    "pushes",
    "entered",
    "first_amount",
    "first_close",
    "first_rank",
]


def _history_features(
    out: pd.DataFrame,
    history: pd.DataFrame,
    snaps: Snapshots,
    won: np.ndarray,
    closed_at: pd.Series,
    stages: dict[str, int],
) -> pd.DataFrame:
    as_of = snaps.as_of
    h, changed_stage = _history_rows(history, snaps, stages)
    state = asof_state(snaps, h, "t", STATE_COLUMNS)
    out["stage_rank"] = state["rank"].to_numpy()
    out["crm_probability"] = state["probability"].to_numpy()
    out["days_in_stage"] = (as_of - state["entered"].to_numpy()) / DAY
    out["stage_regressions"] = state["regressions"].to_numpy()
    out["close_date_pushes"] = state["pushes"].to_numpy()
    out["total_slip_days"] = (state["close"].to_numpy() - state["first_close"].to_numpy()) / DAY
    out["close_date_days_out"] = (state["close"].to_numpy() - as_of) / DAY
    out["amount_log"] = np.log10(1 + state["amount"].to_numpy())
    # No change can be said of a deal first recorded at 0 (or with no amount): missing, not inf.
    first = state["first_amount"].to_numpy(dtype=float)
    known = np.nan_to_num(first) > 0
    out["amount_change_pct"] = np.where(
        known, state["amount"].to_numpy(dtype=float) / np.where(known, first, 1.0) - 1, np.nan
    )
    late_rank = LATE_SHARE * max(max(stages.values(), default=0), 1)
    out["late_entry"] = (state["first_rank"].to_numpy() >= late_rank).astype(float)
    out.loc[state["first_rank"].isna().to_numpy(), "late_entry"] = np.nan
    for name, values in _close_date_features(state, as_of).items():
        out[name] = values
    typical = _won_stage_days(h, changed_stage, won, closed_at, as_of, out["stage_rank"])
    out["stage_time_vs_won"] = out["days_in_stage"].to_numpy() / typical
    return out.reindex(columns=NAMES)


def _history_rows(
    history: pd.DataFrame, snaps: Snapshots, stages: dict[str, int]
) -> tuple[pd.DataFrame, np.ndarray]:
    """The stage history by deal and time with what each row means so far (regressions, pushes,
    entry into the stage, the first amount, close and rank), and whether each row changed stage."""
    h = pd.DataFrame(
        {
            "deal": snaps.codes(history[StageHistory.opportunity_id]),
            "t": micros(history[StageHistory.changed_at]),
        }
    )
    h["rank"] = lookup(history[StageHistory.stage], pd.Series(stages, dtype=float)).to_numpy()
    h["amount"] = (
        history[StageHistory.amount].to_numpy() if StageHistory.amount in history else np.nan
    )
    h["probability"] = (
        history[StageHistory.probability].to_numpy(dtype=float)
        if StageHistory.probability in history
        else np.nan
    )
    h["close"] = np.nan
    if StageHistory.close_date in history:
        close = history[StageHistory.close_date]
        h["close"] = np.where(close.notna(), micros(close), np.nan)
    # Grouped by deal and sorted by time within it (stable), as the events' single pass does.
    order, _ = activity_pass.group_events(h["deal"].to_numpy(), h["t"].to_numpy(), len(snaps.ids))
    h = h.iloc[order]
    deal, rank, close = (h[c].to_numpy(dtype=float) for c in ("deal", "rank", "close"))
    same = np.concatenate([[False], deal[1:] == deal[:-1]])
    # Each row's first row of its deal; a deal's row-wise sums are differences of one running sum.
    begins = np.maximum.accumulate(np.where(same, 0, np.arange(len(h))))
    prev_rank = np.concatenate([[np.nan], rank[:-1]])
    changed = ~same | (rank != prev_rank)
    regression = (same & (rank < prev_rank)).astype(float)
    push = (same & (close > np.concatenate([[np.nan], close[:-1]]))).astype(float)
    h["regressions"] = _running(regression, begins)
    h["pushes"] = _running(push, begins)
    del regression, push  # 27 MB apiece on 3.5M stage rows
    # Each deal's first row changed stage, so the last change never reaches across deals.
    changes = np.maximum.accumulate(np.where(changed, np.arange(len(h)), 0))
    h["entered"] = h["t"].to_numpy(dtype=float)[changes] if len(h) else np.empty(0)
    h["first_amount"] = _first_known(h["amount"].to_numpy(dtype=float), same)
    h["first_close"] = _first_known(close, same)
    h["first_rank"] = _first_known(rank, same)
    return h, changed


def _running(values: np.ndarray, begins: np.ndarray) -> np.ndarray:
    """The running sum of each row's deal so far (rows grouped by deal; `begins`: each row's
    deal's first row)."""
    total = np.cumsum(values)
    return total - total[begins] + values[begins] if len(values) else values


def _first_known(values: np.ndarray, same: np.ndarray) -> np.ndarray:
    """Each row's deal's first non-missing value (missing if it has none), rows grouped by deal;
    `same`: whether a row's deal is the previous row's."""
    if not len(values):
        return values
    blocks = np.flatnonzero(~same)
    where = np.where(np.isnan(values), len(values), np.arange(len(values)))
    first = np.minimum.reduceat(where, blocks)
    known = np.where(first < len(values), values[np.minimum(first, len(values) - 1)], np.nan)
    return known[np.cumsum(~same) - 1]


def _close_date_features(state: pd.DataFrame, as_of: np.ndarray) -> dict[str, np.ndarray]:
    """Where the expected close date sits against the quarters (NaN without a close date)."""
    close = state["close"].to_numpy()
    has_close = ~np.isnan(close)
    close_int = np.where(has_close, close, 0).astype(np.int64)
    in_last_weeks = has_close & ((quarter_end_micros(close_int) - close_int) <= 21 * DAY)
    first_close = state["first_close"].to_numpy()
    first_int = np.where(np.isnan(first_close), 0, first_close).astype(np.int64)
    first_in_last = ~np.isnan(first_close) & (
        (quarter_end_micros(first_int) - first_int) <= 21 * DAY
    )
    # At a quarter's first days the deals that missed the last quarter's end still carry its
    # close date: they won in the new quarter far less often than their stage and call say.
    quarter_end = quarter_end_micros(np.asarray(as_of))
    in_past_quarter = quarter_end_micros(close_int) < quarter_end
    return {
        "close_room_days": np.where(has_close, (quarter_end - close) / DAY, np.nan),
        "close_in_quarter_last_weeks": np.where(has_close, in_last_weeks.astype(float), np.nan),
        "moved_into_quarter_end": np.where(
            has_close, (in_last_weeks & ~first_in_last).astype(float), np.nan
        ),
        "close_date_in_past_quarter": np.where(
            has_close, (has_close & in_past_quarter).astype(float), np.nan
        ),
    }


def _won_stage_days(
    h: pd.DataFrame,
    changed_stage: np.ndarray,
    won: np.ndarray,
    closed_at: pd.Series,
    as_of: np.ndarray,
    stage_rank: pd.Series,
) -> np.ndarray:
    """The typical days (geometric mean) deals won strictly before as_of spent in each row's
    current stage (NaN where none had)."""
    # Only the four columns read, cut to the visits: a copy of all of `h` was 0.25 GB on
    # 3.5M stage rows.
    leave = h.groupby("deal")["t"].shift(-1)
    keep = (
        changed_stage
        & leave.notna().to_numpy()
        & h["rank"].notna().to_numpy()
        & np.isin(h["deal"].to_numpy(), np.flatnonzero(won))
    )
    visits = h.loc[keep, ["deal", "t", "rank"]].assign(leave=leave[keep])
    # A stage visit lasts until the next stage change; approximate with the next row's time.
    log_days = np.log(np.maximum((visits["leave"] - visits["t"]).to_numpy() / DAY, 0.01))
    deal_closed = (
        micros(closed_at.iloc[visits["deal"].to_numpy()])
        if len(visits)
        else np.array([], dtype=np.int64)
    )
    current_rank = np.nan_to_num(stage_rank.to_numpy(), nan=-1).astype(np.int64)
    cum = asof_by_key(
        as_of,
        current_rank,
        deal_closed,
        visits["rank"].to_numpy().astype(np.int64),
        {"n": np.ones(len(visits)), "log": log_days},
    )
    return np.exp(cum["log"] / cum["n"].where(cum["n"] > 0)).to_numpy()


def current_stage(tables: CrmTables, snaps: Snapshots) -> np.ndarray:
    """Each snapshot's stage name from the last stage-history row before as_of (None if none)."""
    history = tables.stage_history
    if history is None or not len(history):
        return np.full(len(snaps), None, dtype=object)
    events = pd.DataFrame(
        {
            "deal": snaps.codes(history[StageHistory.opportunity_id]),
            "t": micros(history[StageHistory.changed_at]),
            "stage": history[StageHistory.stage].to_numpy(dtype=object),
        }
    )
    stage = asof_state(snaps, events, "t", ["stage"])["stage"]
    return stage.astype(object).where(stage.notna(), None).to_numpy()
