"""One feature path for training, backtests and scoring: `build_features(tables, as_of, state)`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dealscore.features import deal, engagement, forecast, history, icp, next_step, prospect
from dealscore.features.catalogue import Feature
from dealscore.features.pit import Snapshots, micros
from dealscore.features.snapshots import HORIZON_BOUNDS, label_horizon
from dealscore.schemas.features import AS_OF, OPPORTUNITY_ID, FeatureFrame, FeatureRows
from dealscore.schemas.keys import positions
from dealscore.schemas.tables import CrmTables, Opportunities, utc

CATALOGUE: list[Feature] = [
    *deal.FEATURES,
    *engagement.FEATURES,
    *prospect.FEATURES,
    *next_step.FEATURES,
    *icp.FEATURES,
    *history.FEATURES,
    *forecast.FEATURES,
]
FEATURE_NAMES: list[str] = [f.name for f in CATALOGUE]  # the win model's inputs, and reasons'
# Built beside them for the won-this-quarter model only (features/deal.py says why).
QUARTER_CATALOGUE: list[Feature] = [*deal.QUARTER_FEATURES]
QUARTER_FEATURE_NAMES: list[str] = [*FEATURE_NAMES, *(f.name for f in QUARTER_CATALOGUE)]
# What a drift check must not read as a change in the business (model/drift.py): inputs whose
# values change with the date alone, in a world where nothing else does.
# Statistics of past outcomes, recomputed at each as_of: a segment's few distinct values jump as
# its deals close (drift compares the segments' share of the open deals instead).
LEARNED_FEATURES: frozenset[str] = frozenset(
    {
        "lookalike_win_rate",
        *(f"{stat}_{name}" for stat in ("win_rate", "won_value") for name, _, _ in icp.SEGMENTS),
        "owner_win_rate",
        "age_vs_won_cycle",
        "stage_time_vs_won",
        "owner_forecast_bias",
    }
)
CUMULATIVE_FEATURES: frozenset[str] = frozenset({"owner_past_deals"})  # grow with the calendar
# Follow the week or the quarter by construction: close dates bunch at quarter ends, and the
# rep's call is weekly (a Friday's run has a week-old call, a Sunday's a fresh one).
RHYTHM_FEATURES: frozenset[str] = frozenset(
    {
        *deal.CALENDAR_FEATURES,
        "close_date_days_out",
        "close_date_in_past_quarter",
        "days_since_forecast",
        "forecast_from_earlier_quarter",
    }
)
DRIFT_UNCOMPARED: frozenset[str] = LEARNED_FEATURES | CUMULATIVE_FEATURES | RHYTHM_FEATURES
# The rep's call, present from the first weekly submission on: compared over the deals that have
# one, since how many new deals have none yet depends on the day of the week.
DRIFT_PRESENT_ONLY: frozenset[str] = frozenset(
    {"rep_probability", "rep_category_rank", "rep_category_change_28d"}
)


@dataclass(frozen=True)
class FeatureState:
    """What the pipeline learns once and keeps, so scoring reproduces training exactly."""

    stage_order: dict[str, int] = field(default_factory=dict)
    icp_rules: tuple[icp.IcpRule, ...] = ()
    fitted_before: pd.Timestamp | None = None
    # History rates count a deal once its first maturity_days are over (features/icp.py);
    # training sets it to the label horizon. 0: a state saved before it existed (auto).
    maturity_days: float = 0.0

    @property
    def maturity(self) -> float:
        """The maturity the history rates use; a state saved before it existed: the longest."""
        return self.maturity_days or HORIZON_BOUNDS[1]


def fit_feature_state(
    tables: CrmTables,
    before: pd.Timestamp,
    icp_rules: tuple[icp.IcpRule, ...] = (),
    maturity_days: float = 0.0,
) -> FeatureState:
    """Learn the stage order from stage history strictly before `before` (the training cut-off);
    maturity_days 0 = the auto label horizon of the deals won before it."""
    order = {}
    if tables.stage_history is not None:
        order = deal.stage_order(tables.stage_history, tables.opportunities, before)
    maturity = maturity_days or label_horizon(tables.opportunities, before)
    return FeatureState(order, tuple(icp_rules), before, maturity)


def open_at(created: Any, closed: Any, unclosed: Any, as_of: Any) -> Any:
    """Created strictly before as_of and not closed before it: NumPy, pandas or Spark columns."""
    return (created < as_of) & (unclosed | (closed >= as_of))


def snapshots_at(tables: CrmTables, as_of: pd.Timestamp | str | pd.DataFrame) -> Snapshots:
    """The (deal, as_of) pairs open at their as_of: every open deal, or the given pairs that are."""
    deals = tables.opportunities
    ids = pd.Index(deals[Opportunities.opportunity_id])
    created = micros(deals[Opportunities.created_at])
    closed_at = deals[Opportunities.closed_at]
    closed, unclosed = micros(closed_at), closed_at.isna().to_numpy()
    if isinstance(as_of, pd.DataFrame):
        missing = {OPPORTUNITY_ID, AS_OF} - set(as_of.columns)
        if missing:
            raise ValueError(f"as_of frame needs columns {sorted(missing)}")
        code = positions(as_of[OPPORTUNITY_ID], ids)
        if (code < 0).any():
            unknown = as_of.loc[code < 0, OPPORTUNITY_ID].head(5).tolist()
            raise ValueError(
                f"as_of frame names {int((code < 0).sum())} unknown deals, e.g. {unknown}"
            )
        times = micros(pd.to_datetime(as_of[AS_OF], utc=True))
    else:
        stamp = utc(as_of)
        code = np.arange(len(ids))
        times = np.full(len(ids), np.datetime64(stamp.tz_convert(None), "us").astype(np.int64))
    is_open = open_at(created[code], closed[code], unclosed[code], times)
    return Snapshots(code[is_open].astype(np.int64), times[is_open], ids)


def build_features(
    tables: CrmTables, as_of: pd.Timestamp | str | pd.DataFrame, state: FeatureState | None = None
) -> FeatureRows:
    """Features for every deal open at as_of (a time, or a frame of opportunity_id/as_of pairs).

    Pairs whose deal was not open at its as_of (created at or after it, or closed before it) are
    dropped: there is nothing to score then.

    Only rows dated strictly before each as_of are used. Without a fitted state, the stage order
    is learned from history before the latest as_of (fine for one scoring date; pass the fitted
    state for training and backtests so every call shares it).
    """
    snaps = snapshots_at(tables, as_of)
    if state is None:
        latest = pd.Timestamp(snaps.as_of.max() if len(snaps) else 0, unit="us", tz="UTC")
        state = fit_feature_state(tables, latest)
    maturity = state.maturity
    keys = pd.DataFrame(
        {
            OPPORTUNITY_ID: snaps.ids[snaps.deal].astype("str"),
            AS_OF: pd.to_datetime(snaps.as_of, unit="us", utc=True),
        }
    )
    families = (  # the one over every activity first, while the block is still empty
        lambda: engagement.engagement_features(tables, snaps),
        lambda: deal.deal_features(tables, snaps, state.stage_order),
        lambda: icp.icp_features(tables, snaps, state.icp_rules, maturity),
        lambda: history.history_features(tables, snaps, maturity),
        lambda: forecast.forecast_features(tables, snaps),
    )
    # One block, each family written into it and let go before the next is built: a million
    # rows of sixty features once, not the families, their concatenation and its selection.
    # A row per feature: pandas keeps a block by column, so each column stays contiguous.
    names = QUARTER_FEATURE_NAMES
    values = np.empty((len(names), len(keys)))
    place = {name: j for j, name in enumerate(names)}
    built: set[str] = set()
    for family in families:
        part = family()
        for name in part.columns.intersection(names):
            values[place[name]] = part[name].to_numpy(dtype=float, na_value=np.nan)
            built.add(name)
        del part
    if missing := [name for name in names if name not in built]:
        raise RuntimeError(f"no feature family builds {missing}")  # the catalogue is ours
    frame = pd.concat([keys, pd.DataFrame(values.T, columns=names, copy=False)], axis=1)
    # In place: the frame is our own, and Pandera's copy of a million rows of sixty features
    # cost seconds and a second copy in memory.
    return FeatureFrame.validate(frame, inplace=True)
