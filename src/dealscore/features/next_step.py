"""Next steps as of T: is a meeting on the calendar, how soon, and how long since the last one lapsed.

Experienced sales leaders treat a deal with nothing booked as dying. A *booked* activity is one
logged before it happens (`created_at` < `occurred_at`): from its booking until it takes place it
is the deal's next step. Only rows known before as_of count (booked before it); rows booked at or
after as_of, even for a date before it, are not known yet. Without a `created_at` column the
export cannot tell a next step from a past touch: these features are then missing.
"""

from __future__ import annotations

import numpy as np

from dealscore.features.activity_pass import MISSING
from dealscore.features.catalogue import family
from dealscore.features.pit import DAY
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
    rows: dict[str, np.ndarray], t: np.ndarray, age_days: np.ndarray
) -> dict[str, np.ndarray]:
    """The next-step features of snapshots at times t, from the pass over activities
    (activity_pass): booked steps known before t and still due ("scheduled"), the earliest such
    date ("due"), the last booked date before t ("step_last") and two-way touches in 30 days."""
    scheduled = rows["scheduled"]
    due = np.where(rows["due"] != MISSING, rows["due"], np.nan)
    last = rows["step_last"]
    found = (last != MISSING) & (scheduled == 0)
    lapsed = np.where(found, (t - np.where(found, last, t)) / DAY, np.nan)
    stale = (scheduled == 0) & (rows["two_way_30d"] == 0) & (age_days >= STALE_DAYS)
    return {
        "next_step_scheduled": (scheduled > 0).astype(float),
        "days_to_next_step": (due - t) / DAY,
        "days_since_next_step_lapsed": lapsed,
        "stale_no_next_step": stale.astype(float),
    }
