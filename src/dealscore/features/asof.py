"""The export as it stood at a past time: what a backtest may know."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from dealscore.features.pit import activity_known_at
from dealscore.schemas.contract import require_dated
from dealscore.schemas.tables import (
    Activities,
    CrmTables,
    Forecasts,
    Opportunities,
    StageHistory,
    Status,
)

# A deal's dated facts, a creation or a close: the latest one is the export's "now".
DEAL_FACTS = (Opportunities.created_at, Opportunities.closed_at)


def last_event(tables: CrmTables) -> pd.Timestamp:
    """The export's latest dated fact about a deal: its "now" (a creation or a close).

    An export without a deal of readable creation date has none: UndatedExportError."""
    require_dated(tables)
    deals = tables.opportunities
    return latest([deals[column].max() for column in DEAL_FACTS])


def latest(dates: Iterable[pd.Timestamp]) -> pd.Timestamp:
    """The latest of these dates, the missing ones left out."""
    return max(date for date in dates if pd.notna(date))


def export_time(last: pd.Timestamp) -> pd.Timestamp:
    """The export's own "now": the whole second just after its latest dated fact (`last_event`).
    Every deal in the export is open or closed by then, and the same export always gives the
    same time, so a nightly rerun on it scores the same run."""
    return (last + pd.Timedelta(seconds=1)).floor("s")


STALE_AS_OF_DAYS = 30  # scoring this long after the export's last event is probably a mistake


def stale_as_of(as_of: pd.Timestamp, export: pd.Timestamp) -> str:
    """A warning when as_of is far past the export's own time (scoring a 2017 export "as of
    today" counts years of silence as age and inactivity); empty otherwise."""
    days = (as_of - export) / pd.Timedelta(days=1)
    if days <= STALE_AS_OF_DAYS:
        return ""
    return (
        f"scoring as of {as_of:%Y-%m-%d}, {days:,.0f} days after the export's last event "
        f"({export:%Y-%m-%d}): every deal looks {days:,.0f} days older and quieter than the "
        "export shows. Leave --as-of out to score as of the export's own time."
    )


def tables_as_of(tables: CrmTables, as_of: pd.Timestamp) -> CrmTables:
    """Deals created before as_of, those not yet closed then shown open, and only history,
    activity and forecast rows known strictly before as_of (an activity from its created_at)."""
    deals = tables.opportunities
    deals = deals[deals[Opportunities.created_at] < as_of].copy()
    later = deals[Opportunities.closed_at].isna() | (deals[Opportunities.closed_at] >= as_of)
    deals.loc[later, Opportunities.status] = Status.OPEN.value
    deals.loc[later, Opportunities.closed_at] = pd.NaT
    if Opportunities.loss_reason in deals:
        deals.loc[later, Opportunities.loss_reason] = None
    known = set(deals[Opportunities.opportunity_id])

    def before(frame: pd.DataFrame | None, time: str, key: str | None) -> pd.DataFrame | None:
        if frame is None:
            return None
        # An activity is known from when it was logged or booked: next steps stay.
        stamp = activity_known_at(frame) if time == Activities.occurred_at else frame[time]
        keep = stamp < as_of
        if key is not None and key in frame:
            keep &= frame[key].isin(known) | frame[key].isna()
        return frame[keep]

    return tables.with_tables(
        opportunities=deals,
        stage_history=before(
            tables.stage_history, StageHistory.changed_at, StageHistory.opportunity_id
        ),
        activities=before(tables.activities, Activities.occurred_at, Activities.opportunity_id),
        forecasts=before(tables.forecasts, Forecasts.submitted_at, Forecasts.opportunity_id),
    )
