"""Engagement and prospect behaviour as of T, from activities (and contacts for seniority)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from dealscore.features import activity_pass, next_step, prospect
from dealscore.features.catalogue import family
from dealscore.features.pit import DAY, Snapshots, activity_known_micros, micros
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
INBOUND, OUTBOUND = prospect.INBOUND, prospect.OUTBOUND
TYPE_BITS = dict(
    zip(
        COUNTED_TYPES,
        (activity_pass.EMAIL, activity_pass.CALL, activity_pass.MEETING, activity_pass.DEMO),
        strict=True,
    )
)
# What the pass counts per snapshot: (name, flag bit, from days, to days before as_of).
COUNTS = [
    *((f"activities_{w}d", activity_pass.ALL, w, 0) for w in WINDOWS),
    *((f"{t.value}s_{w}d", bit, w, 0) for t, bit in TYPE_BITS.items() for w in WINDOWS),
    ("recent_14d", activity_pass.ALL, 14, 0),
    ("prior_14d", activity_pass.ALL, 28, 14),
    ("two_way_30d", activity_pass.TWO_WAY, next_step.STALE_DAYS, 0),
    ("inbound_90d", activity_pass.INBOUND, 90, 0),
    ("directed_90d", activity_pass.DIRECTED, 90, 0),
]
# Flags of each activity type and direction code (activity_pass); a meeting or an inbound touch
# is two-way.
KIND_BITS = np.array(
    [
        TYPE_BITS.get(t, 0) | (activity_pass.TWO_WAY if t == ActivityType.MEETING else 0)
        for t in ActivityType
    ],
    dtype=np.int32,
)
DIRECTION_BITS = np.array(
    [
        activity_pass.INBOUND | activity_pass.DIRECTED | activity_pass.TWO_WAY
        if x == Direction.INBOUND
        else activity_pass.DIRECTED
        if x == Direction.OUTBOUND
        else 0
        for x in Direction
    ],
    dtype=np.int32,
)
BITS = (KIND_BITS, DIRECTION_BITS)
COUNT_SPECS = tuple(
    np.array([c[i] for c in COUNTS], dtype=np.int64) * s for i, s in ((1, 1), (2, DAY), (3, DAY))
)


def _codes(values: pd.Series, categories: list[str]) -> np.ndarray:
    """Positions in `categories` (-1 for missing or unknown), without a Python string per row."""
    return positions(values, pd.Index(categories, dtype="str"))


def engagement_features(tables: CrmTables, snaps: Snapshots) -> pd.DataFrame:
    """Engagement, prospect-behaviour and next-step features; missing without activities."""
    acts = tables.activities
    if acts is None or Activities.opportunity_id not in acts:
        return pd.DataFrame(np.nan, index=range(len(snaps)), columns=NAMES)
    # The contacts' and the deals' codes (a hash of every id, when they come as text) in
    # threads while the rows are flagged: Arrow lets go of Python's lock as it hashes.
    with ThreadPoolExecutor(max_workers=2) as beside:
        contacts = beside.submit(_contacts, acts, tables.contacts)
        deals = beside.submit(snaps.codes, acts[Activities.opportunity_id])
        time, known, row_flags = _row_flags(acts)
        deal = deals.result()
        order, starts = activity_pass.group_events(deal, time, len(snaps.ids))
        # Each per-row array is let go once read: on 17M activities every one is 70-140 MB.
        del deal
        time = activity_pass.gathered(time, order)
        contact, rank_of_contact = contacts.result()
    flags, hours = activity_pass.walk(
        starts, order, time, row_flags, contact, len(rank_of_contact), DAY / 24
    )
    del row_flags
    first = np.flatnonzero(flags & activity_pass.FIRST_TOUCH)
    rank = np.full(len(order), np.nan, dtype=np.float32)  # ranks 0-4: exact, half the bytes
    rank[first] = rank_of_contact[contact[order[first]]]
    del contact, first
    replies = np.flatnonzero(flags & activity_pass.REPLY)
    # Sums of a deal's replies as differences of one running sum over all replies, as before,
    # so the means stay the same to the last bit.
    cum = np.concatenate([[0.0], np.cumsum(hours[replies])])
    reply_starts = np.searchsorted(replies, starts)
    del hours, replies
    known = activity_pass.gathered(known, order)
    del order
    snap_order, snap_starts = activity_pass.group_snapshots(snaps.deal, len(snaps.ids))
    ints, best = activity_pass.answer(
        starts,
        (time, flags, rank, known, float(prospect.SENIOR)),
        (snaps.deal, snaps.as_of, snap_order, snap_starts),
        COUNT_SPECS,
        reply_starts,
    )
    rows = dict(zip([c[0] for c in COUNTS] + list(activity_pass.HISTORY), ints, strict=True))
    out = _engagement(rows, snaps.as_of)
    if Activities.created_at in acts:
        created = micros(tables.opportunities[Opportunities.created_at])[snaps.deal]
        age = (snaps.as_of - created) / DAY
        out.update(next_step.next_step_features(rows, snaps.as_of, age))
    out["inbound_share_90d"] = prospect.inbound_share(rows["inbound_90d"], rows["directed_90d"])
    out["response_latency_hours"] = prospect.response_latency(
        cum, rows["reply_lo"], rows["reply_hi"]
    )
    out.update(_contact_features(acts, tables.contacts, rows, best, snaps.as_of))
    # The arrays as they are, in catalogue order, a missing family as NaN: building a frame of
    # them and reindexing it copied 40 columns of a million rows twice.
    missing = np.full(len(snaps), np.nan)
    return pd.DataFrame({name: out.get(name, missing) for name in NAMES}, copy=False)


def _row_flags(acts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per activity: the time it counts from, the time it was known, and its flags (type,
    direction, booking)."""
    kind = _codes(acts[Activities.type], [t.value for t in ActivityType])
    # Flags of each row's type and direction: -1 (unknown) takes the appended 0.
    row_flags = np.append(KIND_BITS, 0)[kind]
    step = np.isin(kind, [TYPE_CODE[s] for s in next_step.STEP_TYPES])
    del kind  # each per-row array goes once read: 70-140 MB apiece on 17M activities
    if Activities.direction in acts:
        row_flags |= np.append(DIRECTION_BITS, 0)[
            _codes(acts[Activities.direction], [x.value for x in Direction])
        ]
    time = micros(acts[Activities.occurred_at])
    known, booked = time, np.zeros(len(time), dtype=bool)
    if Activities.created_at in acts:
        known = activity_known_micros(acts, time)
        booked = step & (known < time)
        # A touch counts from when it both happened and was known (a call logged a day late
        # counts from the day it was logged; a meeting booked ahead from the day it took place).
        time = np.maximum(known, time, out=time)  # our own copy (micros): in place
    row_flags |= np.where(
        booked, activity_pass.BOOKED | activity_pass.ALL, activity_pass.ALL
    ).astype(np.int32)
    return time, known, row_flags


def _contacts(acts: pd.DataFrame, contacts: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """Each activity's contact code (-1 if none) and each contact code's seniority rank."""
    if Activities.contact_id not in acts:
        return np.full(len(acts), -1, dtype=np.int64), np.empty(0)
    values = acts[Activities.contact_id]
    if isinstance(values.dtype, pd.CategoricalDtype):  # read as labels: their codes as they are
        codes, ids = values.array.codes, values.cat.categories
    else:
        codes, ids = pd.factorize(values)  # Arrow, no Python string per row
    if contacts is None or Contacts.seniority not in contacts:
        return codes.astype(np.int64, copy=False), np.full(len(ids), np.nan)
    rank_of = contacts.set_index(Contacts.contact_id)[Contacts.seniority].map(SENIORITY_RANK)
    return codes.astype(np.int64, copy=False), lookup(pd.Series(ids), rank_of).to_numpy(dtype=float)


def _since(last: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Days from `last` to as_of, missing where there was no such event."""
    found = last != activity_pass.MISSING
    return np.where(found, (t - np.where(found, last, t)) / DAY, np.nan)


def _engagement(rows: dict[str, np.ndarray], t: np.ndarray) -> dict[str, np.ndarray]:
    """The engagement family from the pass's answers."""
    out = {c[0]: rows[c[0]] for c in COUNTS if c[0] in NAMES}
    out["days_since_last_activity"] = _since(rows["last"], t)
    out["activity_trend_14d"] = rows["recent_14d"] - rows["prior_14d"]
    out["meetings_per_email_90d"] = out["meetings_90d"] / (out["emails_90d"] + 1)
    out["days_since_two_way"] = _since(rows["two_way_last"], t)
    return out


def _contact_features(
    acts: pd.DataFrame,
    contacts: pd.DataFrame | None,
    rows: dict[str, np.ndarray],
    best: np.ndarray,
    t: np.ndarray,
) -> dict[str, np.ndarray]:
    """Distinct contacts, top seniority and a new senior stakeholder, from first touches."""
    nan = np.full(len(t), np.nan)
    if Activities.contact_id not in acts:
        return {"distinct_contacts": nan, "max_seniority": nan, "new_senior_stakeholder_30d": nan}
    out = {"distinct_contacts": rows["distinct"].astype(float)}
    if contacts is None or Contacts.seniority not in contacts:
        return out | {"max_seniority": nan, "new_senior_stakeholder_30d": nan}
    recent = prospect.new_senior_stakeholder(rows["senior_first"], t)
    return out | {"max_seniority": best, "new_senior_stakeholder_30d": recent}
