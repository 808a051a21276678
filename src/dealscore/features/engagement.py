"""Engagement and prospect behaviour as of T, from activities (and contacts for seniority)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dealscore.features import next_step, prospect
from dealscore.features.catalogue import family
from dealscore.features.pit import DAY, Snapshots, SortedEvents, activity_known_at, micros
from dealscore.schemas.keys import lookup, positions
from dealscore.schemas.tables import (
    Activities,
    ActivityType,
    Contacts,
    CrmTables,
    Direction,
    Opportunities,
    Seniority,
)

WINDOWS = (7, 30, 90)
COUNTED_TYPES = (ActivityType.EMAIL, ActivityType.CALL, ActivityType.MEETING, ActivityType.DEMO)
SENIORITY_RANK = {
    Seniority.INDIVIDUAL: 0,
    Seniority.MANAGER: 1,
    Seniority.DIRECTOR: 2,
    Seniority.VP: 3,
    Seniority.EXECUTIVE: 4,
}

ENGAGEMENT = family(
    "engagement",
    ("activities", "contacts"),
    **{f"activities_{w}d": f"activities on the deal in the {w} days before as_of" for w in WINDOWS},
    **{
        f"{t.value}s_{w}d": f"{t.value} activities in the {w} days before as_of"
        for t in COUNTED_TYPES
        for w in WINDOWS
    },
    days_since_last_activity="days since the deal's last activity (missing if none yet)",
    activity_trend_14d="activities in the last 14 days minus the 14 days before",
    distinct_contacts="distinct contacts engaged on the deal so far (multi-threading)",
    max_seniority="most senior contact engaged so far: 0 individual .. 4 executive",
    meetings_per_email_90d="meetings over (emails + 1) in the last 90 days",
    days_since_two_way="days since the last inbound touch or meeting",
)
FEATURES = ENGAGEMENT
# Prospect behaviour and next steps share this module's one pass over activities; their logic
# is in prospect.py and next_step.py.
NAMES = [f.name for f in ENGAGEMENT + prospect.FEATURES + next_step.FEATURES]
TYPE_CODE = {t: i for i, t in enumerate(ActivityType)}
INBOUND = prospect.INBOUND


def _codes(values: pd.Series, categories: list[str]) -> np.ndarray:
    """Positions in `categories` (-1 for missing or unknown), without a Python string per row."""
    return positions(values, pd.Index(categories, dtype="str"))


def engagement_features(tables: CrmTables, snaps: Snapshots) -> pd.DataFrame:
    """Engagement, prospect-behaviour and next-step features; missing without activities."""
    acts = tables.activities
    if acts is None or Activities.opportunity_id not in acts:
        return pd.DataFrame(np.nan, index=range(len(snaps)), columns=NAMES)
    deal = snaps.codes(acts[Activities.opportunity_id])
    kind_of_row = _codes(acts[Activities.type], [t.value for t in ActivityType])
    time = micros(acts[Activities.occurred_at])  # a fresh array: changed in place below
    booked = None
    if Activities.created_at in acts:
        known = micros(activity_known_at(acts))
        steps = np.isin(kind_of_row, [TYPE_CODE[s] for s in next_step.STEP_TYPES])
        rows = np.flatnonzero(steps & (known < time) & (deal >= 0))
        booked = (deal[rows], known[rows], time[rows])
        # A touch counts from when it both happened and was known (a call logged a day late
        # counts from the day it was logged; a meeting booked ahead from the day it took place).
        np.maximum(known, time, out=time)
        del known, steps, rows
    events = SortedEvents(deal, time, len(snaps.ids))
    del time
    kind = kind_of_row[events.order]
    if Activities.direction in acts:
        direction = _codes(acts[Activities.direction], [x.value for x in Direction])[events.order]
    else:
        direction = np.full(len(kind), -1, dtype=np.int8)
    d, t = snaps.deal, snaps.as_of
    out: dict[str, np.ndarray] = {}
    for w in WINDOWS:
        out[f"activities_{w}d"] = events.count(d, t - w * DAY, t)
    for activity_type in COUNTED_TYPES:
        typed = events.subset(kind == TYPE_CODE[activity_type])
        for w in WINDOWS:
            out[f"{activity_type.value}s_{w}d"] = typed.count(d, t - w * DAY, t)
    last, found = events.last_before(d, t)
    out["days_since_last_activity"] = np.where(found, (t - events.time[last]) / DAY, np.nan)
    out["activity_trend_14d"] = events.count(d, t - 14 * DAY, t) - events.count(
        d, t - 28 * DAY, t - 14 * DAY
    )
    out["meetings_per_email_90d"] = out["meetings_90d"] / (out["emails_90d"] + 1)
    inbound = direction == INBOUND
    two_way = events.subset(inbound | (kind == TYPE_CODE[ActivityType.MEETING]))
    last, found = two_way.last_before(d, t)
    out["days_since_two_way"] = np.where(found, (t - two_way.time[last]) / DAY, np.nan)
    if booked is not None:
        created = micros(tables.opportunities[Opportunities.created_at])[d]
        out.update(
            next_step.next_step_features(
                *booked,
                len(snaps.ids),
                d,
                t,
                two_way.count(d, t - next_step.STALE_DAYS * DAY, t),
                (t - created) / DAY,
            )
        )

    out["inbound_share_90d"] = prospect.inbound_share(events, direction, d, t)
    out["response_latency_hours"] = prospect.response_latency(events, direction, d, t)
    out.update(_contact_features(acts, events, tables.contacts, d, t))
    return pd.DataFrame(out).reindex(columns=NAMES)


def _contact_features(
    acts: pd.DataFrame,
    events: SortedEvents,
    contacts: pd.DataFrame | None,
    d: np.ndarray,
    t: np.ndarray,
) -> dict[str, np.ndarray]:
    nan = np.full(len(d), np.nan)
    if Activities.contact_id not in acts:
        return {"distinct_contacts": nan, "max_seniority": nan, "new_senior_stakeholder_30d": nan}
    contact_codes, contact_ids = pd.factorize(acts[Activities.contact_id])
    contact = contact_codes[events.order]
    # First touch of each (deal, contact): in (deal, time) order, the first occurrence.
    pair = pd.Series(events.deal * np.int64(len(contact_ids) + 1) + contact)
    first_touch = (contact >= 0) & ~pair.duplicated().to_numpy()
    firsts = events.subset(first_touch)
    first_contact = contact[first_touch]
    out = {"distinct_contacts": firsts.count_before(d, t).astype(float)}
    if contacts is None or Contacts.seniority not in contacts:
        return out | {"max_seniority": nan, "new_senior_stakeholder_30d": nan}
    rank_of = contacts.set_index(Contacts.contact_id)[Contacts.seniority].map(SENIORITY_RANK)
    rank = lookup(pd.Series(contact_ids), rank_of).to_numpy(dtype=float)[first_contact]
    # The most senior level whose first touch came before as_of.
    best = np.full(len(d), np.nan)
    for level in range(len(SENIORITY_RANK)):
        reached = firsts.subset(rank >= level).count_before(d, t) > 0
        best = np.where(reached, level, best)
    recent = prospect.new_senior_stakeholder(firsts.subset(rank >= prospect.SENIOR), d, t)
    return out | {"max_seniority": best, "new_senior_stakeholder_30d": recent}
