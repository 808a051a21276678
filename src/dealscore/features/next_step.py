"""Next steps as of T: is a meeting on the calendar, how soon, and how long since the last one lapsed.

Experienced sales leaders treat a deal with nothing booked as dying. A *booked* activity is one
logged before it happens (`created_at` < `occurred_at`): from its booking until it takes place it
is the deal's next step. Only rows known before as_of count (booked before it); rows booked at or
after as_of, even for a date before it, are not known yet. Without a `created_at` column the
export cannot tell a next step from a past touch: these features are then missing.
"""

from __future__ import annotations

import numpy as np

from dealscore.features.catalogue import family
from dealscore.features.pit import DAY, SortedEvents
from dealscore.schemas.tables import ActivityType

STALE_DAYS = 30
STEP_TYPES = (ActivityType.MEETING, ActivityType.CALL, ActivityType.DEMO)

FEATURES = family(
    "next_step",
    ("activities",),
    next_step_scheduled="1 if a meeting, call or demo booked before as_of is due at or after it",
    days_to_next_step="days from as_of to the earliest such booked next step (missing if none)",
    days_since_next_step_lapsed=(
        "with nothing booked, days since the last booked next step's date passed (missing if one "
        "is booked or none ever was)"
    ),
    stale_no_next_step=(
        f"1 if nothing is booked and there was no two-way touch in {STALE_DAYS} days, on a deal "
        f"open {STALE_DAYS} days or more"
    ),
)
NAMES = [f.name for f in FEATURES]


def next_step_features(
    deal: np.ndarray,
    known: np.ndarray,
    occurred: np.ndarray,
    n_deals: int,
    d: np.ndarray,
    t: np.ndarray,
    two_way_30d: np.ndarray,
    age_days: np.ndarray,
) -> dict[str, np.ndarray]:
    """The next-step features of snapshots (d, t), from the booked steps: meetings, calls and
    demos logged before they take place (deal code, known and occurred microseconds)."""
    by_date = SortedEvents(deal, occurred, n_deals)
    by_booking = SortedEvents(deal, known, n_deals)
    # Booked before t, minus those whose date has passed (known < occurred, so those count in both).
    scheduled = by_booking.count_before(d, t) - by_date.count_before(d, t)
    known_by_date = known[by_date.order]
    # The earliest booked step due at or after t that was booked before t: walk each deal's
    # steps in date order from t until one was known (a few steps at most; one pass per step).
    pos = by_date.position(d, t)
    end = by_date.starts[d + 1]  # never walk into the next deal's steps
    due = np.full(len(d), np.nan)
    todo = np.flatnonzero((scheduled > 0) & (pos < end))
    while len(todo):
        at = pos[todo]
        hit = (known_by_date[at] < t[todo]) & (by_date.time[at] >= t[todo])
        due[todo[hit]] = by_date.time[at[hit]]
        pos[todo[~hit]] += 1
        todo = todo[~hit]
        todo = todo[pos[todo] < end[todo]]
    last, found = by_date.last_before(d, t)
    last_date = np.append(by_date.time, 0)[last]  # the padding keeps an empty table indexable
    lapsed = np.where(found & (scheduled == 0), (t - last_date) / DAY, np.nan)
    stale = (scheduled == 0) & (two_way_30d == 0) & (age_days >= STALE_DAYS)
    return {
        "next_step_scheduled": (scheduled > 0).astype(float),
        "days_to_next_step": (due - t) / DAY,
        "days_since_next_step_lapsed": lapsed,
        "stale_no_next_step": stale.astype(float),
    }
