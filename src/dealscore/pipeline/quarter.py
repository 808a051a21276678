"""The quarter's number, whole: what is booked, what the open deals will bring before the quarter
ends, and what deals not yet created will bring; with a range, beside the reps' rollups.

- booked: the amounts of the deals won in the quarter before as_of;
- open: over every deal open at as_of (due in the quarter or not: deals due later close early),
  amount x P(won before the quarter ends), the won-this-quarter model's probability, times what
  won deals closed at against their amount at the same point of past quarters (discounts);
- new: deals created after as_of and won within the quarter. Learned from the past quarters that
  ended before as_of, at the same point of each: what such deals brought, per deal created in
  the 90 days before that point (the pace of new pipeline, so growth carries over), times the
  deals created in the 90 days before as_of; where the history starts within those 90 days (but
  at least MIN_PACE_DAYS before the point), the pace over the days it covers, scaled to 90;
- the range: the 10th and 90th percentiles of booked + open + new when the open part strays from
  its expectation as far as it did at past dates at the same point of the quarter (out of fold,
  in training: model/totals.py) and the new part's rate is one of the past quarters';
- the reps' rollups on the same footing: booked + commit, booked + commit + best case, from their
  latest call on the open deals whose expected close falls in the quarter (Salesforce's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dealscore.model.totals import CollectiveError
from dealscore.schemas import CrmTables, Opportunities, Status
from dealscore.schemas.features import OPPORTUNITY_ID

NEW_QUARTERS = 4  # the past quarters the not-yet-created part is learned from
MIN_NEW_QUARTERS = 1  # one past quarter says more than leaving a third of a quarter out
MIN_NEW_WINS = 10  # won new deals a group's own history needs before its own rate is used
PACE_DAYS = 90  # the window whose new deals measure the pace of new pipeline
MIN_PACE_DAYS = 30  # the least of that window a history must cover for its pace to count
RANGE = (0.1, 0.9)
RANGE_WORDS = "10th to 90th percentile"
DRAWS = 4000


def quarter_of(time: pd.Timestamp) -> pd.Period:
    """The calendar quarter a UTC time falls in."""
    return pd.Period(time.tz_convert("UTC").tz_localize(None), freq="Q")


def bounds(quarter: pd.Period) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(start, first instant after) of a quarter, in UTC."""
    return (
        quarter.start_time.tz_localize("UTC"),
        (quarter + 1).start_time.tz_localize("UTC"),
    )


def _amount(deals: pd.DataFrame) -> pd.Series:
    if Opportunities.amount not in deals:
        return pd.Series(0.0, index=deals.index)
    return deals[Opportunities.amount].fillna(0.0).astype(float)


def won_between(tables: CrmTables, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Whether each deal was won in [start, end)."""
    deals = tables.opportunities
    closed = deals[Opportunities.closed_at]
    return (deals[Opportunities.status] == Status.WON) & (closed >= start) & (closed < end)


def bookings(tables: CrmTables, start: pd.Timestamp, end: pd.Timestamp) -> float:
    """The amounts of the deals won in [start, end)."""
    return float(_amount(tables.opportunities)[won_between(tables, start, end)].sum())


def new_deal_history(
    tables: CrmTables, as_of: pd.Timestamp, quarters: int = NEW_QUARTERS
) -> pd.DataFrame:
    """Per past quarter that ended by as_of, at the point as far into it as as_of is into its
    own: the bookings of deals created from that point on and won within that quarter (`new`),
    the deals created in the PACE_DAYS before the point (`pace`), and `rate` = new / pace.

    Reads only deals created before as_of and outcomes dated before the past quarter's end, so
    nothing at or after as_of; where the pace window starts before the export's first deal, the
    pace is taken over the days the export covers (`pace`), and a quarter with fewer than
    MIN_PACE_DAYS of them is left out."""
    deals = tables.opportunities
    deals = deals[deals[Opportunities.created_at] < as_of]
    created = deals[Opportunities.created_at]
    closed = deals[Opportunities.closed_at]
    amount = _amount(deals)
    won = deals[Opportunities.status] == Status.WON
    first = created.min()
    here = quarter_of(as_of)
    elapsed = as_of - bounds(here)[0]
    rows = []
    for back in range(1, quarters + 1):  # a handful of quarters, not a loop over deals
        quarter = here - back
        start, end = bounds(quarter)
        point = min(start + elapsed, end)
        paced = _pace(created, first, point)
        if np.isnan(paced):
            continue
        new = won & (created >= point) & (closed < end)
        rows.append(
            {
                "period": str(quarter),
                "new": float(amount[new].sum()),
                "new_wins": int(new.sum()),
                "pace": paced,
            }
        )
    frame = pd.DataFrame(rows, columns=["period", "new", "new_wins", "pace"])
    frame["rate"] = frame["new"] / frame["pace"].where(frame["pace"] > 0)
    return frame.dropna(subset=["rate"]).reset_index(drop=True)


def _pace(created: pd.Series, first: pd.Timestamp, point: pd.Timestamp) -> float:
    """The deals created in the PACE_DAYS before `point`; where the export starts (`first`)
    within them, the count over the days it covers scaled to PACE_DAYS (a short history's first
    quarters get a pace rather than no new part); NaN under MIN_PACE_DAYS of cover."""
    start = point - pd.Timedelta(days=PACE_DAYS)
    if pd.isna(first):
        return np.nan
    covered = (point - max(start, first)) / pd.Timedelta(days=1)
    if covered < MIN_PACE_DAYS:
        return np.nan
    count = int(((created >= start) & (created < point)).sum())
    return count * PACE_DAYS / covered


def pace(tables: CrmTables, as_of: pd.Timestamp) -> float:
    """The deals created in the PACE_DAYS before as_of (scaled as `_pace` says); 0 where the
    export covers too little of them."""
    created = tables.opportunities[Opportunities.created_at]
    created = created[created < as_of]
    return float(np.nan_to_num(_pace(created, created.min(), as_of)))


@dataclass(frozen=True)
class QuarterNumber:
    """The quarter's number as of a time: its parts, its range and the reps' rollups."""

    period: str
    as_of: pd.Timestamp
    booked: float
    booked_deals: int
    open: float  # every open deal: amount x P(won before the quarter ends)
    new: float  # deals not yet created
    low: float
    high: float
    rep_commit: float  # booked + commit, NaN without rep forecasts
    rep_commit_best_case: float
    open_deals: int
    new_history: pd.DataFrame  # new_deal_history's rows the new part was learned from
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def model(self) -> float:
        return self.booked + self.open + self.new

    def forecasts(self) -> dict[str, float]:
        """Each forecast of the quarter's total bookings, and the model's parts."""
        return {
            "model": self.model,
            "model_low": self.low,
            "model_high": self.high,
            "booked": self.booked,
            "model_open": self.open,
            "model_new": self.new,
            "rep_commit": self.rep_commit,
            "rep_commit_best_case": self.rep_commit_best_case,
        }


def quarter_number(
    tables: CrmTables,
    as_of: pd.Timestamp,
    open_deals: pd.DataFrame,
    error: CollectiveError | None = None,
    seed: int = 0,
    pooled_rate: float | None = None,
) -> QuarterNumber:
    """The quarter of as_of, whole. `open_deals`: every deal open at as_of with `amount`,
    `p_win_in_period` (P(won before the quarter ends)), `due` (expected close in the quarter)
    and `rep_category` (their latest call, None where none). `error`: the CollectiveError of the
    model that gave the probabilities; None: no amount factor, and each deal won or not on its
    own (a narrower range). `pooled_rate`: for a group of the export (a team), the rate of
    new deals to use where its own history holds fewer than MIN_NEW_WINS won new deals."""
    quarter = quarter_of(as_of)
    start, end = bounds(quarter)
    notes = []
    booked = bookings(tables, start, as_of)
    amount = open_deals["amount"].to_numpy(dtype=float)
    p = np.nan_to_num(open_deals["p_win_in_period"].to_numpy(dtype=float))
    days_left = (end - as_of) / pd.Timedelta(days=1)
    factor, sd = error.at(days_left) if error is not None else (1.0, None)
    open_part = float((amount * p).sum()) * factor

    history = new_deal_history(tables, as_of)
    now_pace = pace(tables, as_of)
    new, rates = _new_part(history, now_pace, pooled_rate)
    notes.extend(_new_part_notes(history, rates, pooled_rate))
    notes.extend(_open_part_notes(error))
    rates = np.zeros(1) if rates is None else rates
    rng = np.random.default_rng(seed)
    opened = _open_draws(open_part, amount, p, sd, rng)
    # The new part at one of the past quarters' rates.
    draws = (
        booked
        + np.clip(opened, 0.0, amount.sum() * max(factor, 1.0))
        + now_pace * rng.choice(rates, DRAWS)
    )
    low, high = np.quantile(draws, RANGE)

    commit, best = _rep_rollups(open_deals, amount)
    return QuarterNumber(
        period=str(quarter),
        as_of=as_of,
        booked=booked,
        booked_deals=int(won_between(tables, start, as_of).sum()),
        open=open_part,
        new=new,
        low=float(low),
        high=float(high),
        rep_commit=booked + commit,
        rep_commit_best_case=booked + best,
        open_deals=len(open_deals),
        new_history=history,
        notes=tuple(notes),
    )


def _rep_rollups(open_deals: pd.DataFrame, amount: np.ndarray) -> tuple[float, float]:
    """The amounts of the deals due in the quarter called commit, and commit or best case (NaN
    both when no deal has a rep's call)."""
    category = open_deals["rep_category"]
    if not category.notna().any():
        return np.nan, np.nan
    due = open_deals["due"].to_numpy(dtype=bool)
    commit = float(amount[due & (category == "commit").to_numpy()].sum())
    return commit, float(amount[due & category.isin(["commit", "best_case"]).to_numpy()].sum())


def _new_part(
    history: pd.DataFrame, now_pace: float, pooled_rate: float | None
) -> tuple[float, np.ndarray | None]:
    """(the bookings expected from deals not yet created, the past rates drawn from for the
    range); rates None when too few past quarters say anything."""
    rates = history["rate"].to_numpy()
    if pooled_rate is not None and history["new_wins"].sum() < MIN_NEW_WINS:
        return float(now_pace * pooled_rate), np.array([pooled_rate])
    if len(rates) >= MIN_NEW_QUARTERS:
        return float(now_pace * rates.mean()), rates
    return 0.0, None


def _new_part_notes(
    history: pd.DataFrame, rates: np.ndarray | None, pooled_rate: float | None
) -> list[str]:
    """What the number should say of its new-deal part: left out, or from one quarter only."""
    if rates is None:
        return [
            "deals not yet created: not counted (no past quarter with "
            f"{MIN_PACE_DAYS} days of history before the same point of the quarter)"
        ]
    if len(history) == 1 and pooled_rate is None:
        return [
            f"deals not yet created: learned from one past quarter only ({history['period'][0]}); "
            "the range does not widen for it"
        ]
    return []


def _open_part_notes(error: CollectiveError | None) -> list[str]:
    """What the number should say of its open part: a model that has seen one quarter end."""
    if error is None or len(error.quarters) != 1:
        return []
    return [
        "open deals: the won-this-quarter model has seen one past quarter end only "
        f"({error.quarters[0]}); its sums and the range cannot know yet how one quarter differs "
        "from another (a young history's first quarters can be far off)"
    ]


def _open_draws(
    open_part: float,
    amount: np.ndarray,
    p: np.ndarray,
    sd: float | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draws of the open part: as far as it strayed at past dates (a lognormal with mean
    open_part), or, with no such record, each deal won or not on its own (a normal)."""
    if sd is not None:
        return open_part * np.exp(rng.normal(-(sd**2) / 2, sd, DRAWS))
    each = float(np.sqrt((amount**2 * p * (1 - p)).sum()))
    return rng.normal(open_part, each, DRAWS)


def numbers_by_group(
    tables: CrmTables,
    as_of: pd.Timestamp,
    open_deals: pd.DataFrame,
    group_of: pd.Series,
    whole: QuarterNumber,
    error: CollectiveError | None = None,
) -> pd.DataFrame:
    """The quarter's number per group (`group_of`: every deal's group, by opportunity_id):
    booked, open and new from the group's own deals; the new part at the group's own rate where
    its history holds MIN_NEW_WINS won new deals, else at the export's rate (`new_from` says
    which; `whole`: the quarter_number of every group at once). One row per group and a `total`
    row."""
    rate = float(whole.new_history["rate"].mean()) if whole.new else 0.0
    deals = tables.opportunities
    group = deals[Opportunities.opportunity_id].map(group_of).to_numpy()
    open_group = open_deals[OPPORTUNITY_ID].map(group_of).to_numpy()
    rows = []
    for name in pd.unique(group):  # a handful of teams, not a loop over deals
        own = tables.with_tables(opportunities=deals[group == name])
        number = quarter_number(own, as_of, open_deals[open_group == name], error, pooled_rate=rate)
        own_rate = number.new_history["new_wins"].sum() >= MIN_NEW_WINS
        rows.append(
            {
                "group": name,
                "booked": number.booked,
                "open": number.open,
                "new": number.new,
                "model": number.model,
                "rep_commit": number.rep_commit,
                "rep_commit_best_case": number.rep_commit_best_case,
                "new_from": "own history" if own_rate else "the whole export",
            }
        )
    table = pd.DataFrame(rows).sort_values("group", ignore_index=True)
    total = table.drop(columns=["group", "new_from"]).sum(min_count=1)
    total_row = pd.DataFrame([{"group": "total", **total.to_dict(), "new_from": ""}])
    return pd.concat([table, total_row], ignore_index=True)
