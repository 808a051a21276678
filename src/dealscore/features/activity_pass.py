"""One pass over a deal's activities answers all its snapshots' engagement counts, in numba.

The events are grouped once by deal (a counting sort on the dense deal codes, then a stable sort
by time inside each deal's block, which is usually sorted already); each deal's snapshots then
look only inside that deal's small block. Every lookup sees only events dated strictly before
the snapshot's as_of.
"""

from __future__ import annotations

import numba
import numpy as np

# Bits of an event's flags: which counts it joins.
ALL, EMAIL, CALL, MEETING, DEMO, TWO_WAY, INBOUND, DIRECTED, FIRST_TOUCH, REPLY, BOOKED = (
    1 << i for i in range(11)
)
# Rows of the integer answers after the windowed counts (one row per count asked for).
HISTORY = (
    "distinct",
    "reply_lo",
    "reply_hi",
    "last",
    "two_way_last",
    "senior_first",
    "scheduled",
    "due",
    "step_last",
)
MISSING = np.iinfo(np.int64).min  # a time not found ("no such event")
CHUNKS = 64  # blocks of deals answer() shares out over the cores
WALK_PARTS = 4  # blocks of deals walk() shares out: each keeps its own contacts seen


@numba.njit(cache=True)
def _group(codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable counting sort by code (codes < 0 left out): (order, starts of each group)."""
    starts = np.zeros(n_groups + 1, dtype=np.int64)
    for c in codes:
        if c >= 0:
            starts[c + 1] += 1
    for g in range(n_groups):
        starts[g + 1] += starts[g]
    fill = starts[:-1].copy()
    order = np.empty(starts[-1], dtype=np.int64)
    for i in range(len(codes)):
        c = codes[i]
        if c >= 0:
            order[fill[c]] = i
            fill[c] += 1
    return order, starts


@numba.njit(cache=True, parallel=True)
def _sort_blocks(order: np.ndarray, starts: np.ndarray, time: np.ndarray) -> None:
    """Sort each block of `order` by time, stably (ties keep row order), in place."""
    for g in numba.prange(len(starts) - 1):
        lo, hi = starts[g], starts[g + 1]
        done = True
        for i in range(lo + 1, hi):
            if time[order[i]] < time[order[i - 1]]:
                done = False
                break
        if not done:
            block = order[lo:hi].copy()
            order[lo:hi] = block[np.argsort(time[block], kind="mergesort")]


def group_events(deal: np.ndarray, time: np.ndarray, n_deals: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): rows grouped by deal code and sorted by (time, row) within each deal;
    rows of deal d are order[starts[d]:starts[d + 1]]; rows of unknown deals (-1) are left out."""
    order, starts = _group(deal, n_deals)
    _sort_blocks(order, starts, time)
    return order, starts


def group_snapshots(deal: np.ndarray, n_deals: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): snapshot positions grouped by deal code."""
    return _group(deal, n_deals)


@numba.njit(cache=True)
def last_before(
    starts: np.ndarray, order: np.ndarray, time: np.ndarray, deal: np.ndarray, as_of: np.ndarray
) -> np.ndarray:
    """For each (deal, as_of): the row of the deal's latest event strictly before as_of (the
    last in row order among events at the same time), -1 where none; events grouped by
    group_events."""
    out = np.full(len(deal), -1, dtype=np.int64)
    for s in range(len(deal)):
        d = deal[s]
        if d < 0:
            continue
        lo, hi = starts[d], starts[d + 1]
        while lo < hi:  # the first event at or after as_of
            mid = (lo + hi) // 2
            if time[order[mid]] < as_of[s]:
                lo = mid + 1
            else:
                hi = mid
        if lo > starts[d]:
            out[s] = order[lo - 1]
    return out


@numba.njit(cache=True, parallel=True)
def walk(
    starts: np.ndarray,
    order: np.ndarray,
    time: np.ndarray,
    row_flags: np.ndarray,
    contact: np.ndarray,
    n_contacts: int,
    hour: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Each event's flags, with its deal's first touch of a contact and replies marked, and for a
    reply (an inbound touch after an outbound one) the hours since the deal's latest outbound
    (else NaN), in grouped order; `row_flags` and `contact` are per row. Deals are shared out
    in WALK_PARTS blocks over the cores, each with its own record of contacts seen."""
    flags = np.empty(len(order), dtype=np.int32)
    hours = np.full(len(order), np.nan)
    edges = np.linspace(0, len(starts) - 1, WALK_PARTS + 1).astype(np.int64)
    rows = (starts, order, time, row_flags, contact)
    for p in numba.prange(WALK_PARTS):
        _walk_deals(edges[p], edges[p + 1], rows, n_contacts, hour, flags, hours)
    return flags, hours


@numba.njit(cache=True)
def _walk_deals(
    first: int,
    last: int,
    rows: tuple,
    n_contacts: int,
    hour: float,
    flags: np.ndarray,
    hours: np.ndarray,
) -> None:
    """walk() for deals first..last-1; `rows` is (starts, order, time, row_flags, contact)."""
    starts, order, time, row_flags, contact = rows
    seen = np.full(n_contacts, -1, dtype=np.int64)  # the last deal each contact was seen on
    for d in range(first, last):
        last_out = np.nan
        for i in range(starts[d], starts[d + 1]):
            f = row_flags[order[i]]
            c = contact[order[i]]
            if c >= 0 and seen[c] != d:  # blocks are contiguous: seen on d means earlier here
                seen[c] = d
                f |= FIRST_TOUCH
            if f & INBOUND:
                if not np.isnan(last_out):
                    hours[i] = (time[i] - last_out) / hour
                    f |= REPLY
            elif f & DIRECTED:
                last_out = float(time[i])
            flags[i] = f


@numba.njit(cache=True, parallel=True)
def gathered(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """`values[order]`, over the cores."""
    out = np.empty(len(order), dtype=values.dtype)
    for i in numba.prange(len(order)):
        out[i] = values[order[i]]
    return out


@numba.njit(cache=True)
def _position(time: np.ndarray, lo: int, hi: int, t: int) -> int:
    """The first index in [lo, hi) whose time is at or after t (hi if none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if time[mid] < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True)
def _prefix(lo: int, hi: int, events: tuple, scratch: np.ndarray, best: np.ndarray) -> None:
    """Running totals over a deal's block: scratch[0, k], [1, k], [2, k] are the first touches,
    replies and last two-way time among its first k events; best[k] the top seniority."""
    time, flags, rank = events[0], events[1], events[2]
    scratch[0, 0], scratch[1, 0], scratch[2, 0] = 0, 0, MISSING
    best[0] = np.nan
    for k in range(hi - lo):
        i = lo + k
        f = flags[i]
        scratch[0, k + 1] = scratch[0, k] + (1 if f & FIRST_TOUCH else 0)
        scratch[1, k + 1] = scratch[1, k] + (1 if f & REPLY else 0)
        scratch[2, k + 1] = time[i] if f & TWO_WAY else scratch[2, k]
        r = rank[i] if f & FIRST_TOUCH else np.nan
        best[k + 1] = r if r >= 0 and not (best[k] >= r) else best[k]


@numba.njit(cache=True)
def _senior_first(lo: int, hi: int, events: tuple) -> int:
    """Time of the deal's first touch of a contact at senior rank or above (MISSING if none)."""
    time, flags, rank, senior = events[0], events[1], events[2], events[4]
    for i in range(lo, hi):
        if flags[i] & FIRST_TOUCH and rank[i] >= senior:
            return time[i]
    return MISSING


@numba.njit(cache=True)
def _booked(lo: int, hi: int, events: tuple, steps: np.ndarray) -> int:
    """Copy the block's booked steps (date order) into steps[0], their booking times into
    steps[1], and sorted booking times into steps[2]; return how many."""
    time, flags, known = events[0], events[1], events[3]
    n = 0
    for i in range(lo, hi):
        if flags[i] & BOOKED:
            steps[0, n], steps[1, n] = time[i], known[i]
            n += 1
    if n > 32:
        steps[2, :n] = np.sort(steps[1, :n])
        return n
    for k in range(n):  # a few steps: insertion sort, no allocation per deal
        v = steps[1, k]
        m = k
        while m > 0 and steps[2, m - 1] > v:
            steps[2, m] = steps[2, m - 1]
            m -= 1
        steps[2, m] = v
    return n


@numba.njit(cache=True)
def _next_step(steps: np.ndarray, n: int, t: int, out: np.ndarray, j: int, row: int) -> None:
    """Booked steps known before t still due (count), the earliest due date and the last lapsed."""
    passed = _position(steps[0], 0, n, t)
    scheduled = _position(steps[2], 0, n, t) - passed
    out[row, j] = scheduled
    out[row + 1, j] = MISSING
    if scheduled > 0:
        for k in range(passed, n):
            if steps[1, k] < t:
                out[row + 1, j] = steps[0, k]
                break
    out[row + 2, j] = steps[0, passed - 1] if passed > 0 else MISSING


@numba.njit(cache=True)
def _windows(
    lo: int,
    hi: int,
    t: int,
    time: np.ndarray,
    flags: np.ndarray,
    counts: tuple,
    out: np.ndarray,
    j: int,
) -> None:
    """The windowed counts of one snapshot: events with a flag bit, from <= t - time < to."""
    bits, since, until = counts
    start = _position(time, lo, hi, t - since.max())
    for i in range(start, hi):
        age = t - time[i]
        f = flags[i]
        for c in range(len(bits)):
            if f & bits[c] and age <= since[c] and age > until[c]:
                out[c, j] += 1


@numba.njit(cache=True, parallel=True)
def answer(
    starts: np.ndarray,
    events: tuple,
    snaps: tuple,
    counts: tuple,
    reply_starts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Integer answers (a row per count, then per HISTORY name) and top seniority per snapshot.
    `events` is (time, flags, seniority rank at first touches, known time, senior rank) in
    grouped order; `snaps` (deal, as_of, order, starts) with order and starts from
    `group_snapshots`; `counts` (flag bits, from, to) of each count. Deals are shared out in
    chunks over the cores: each snapshot's answers are written by its deal's chunk alone."""
    n_snaps = len(snaps[0])
    ints = np.zeros((len(counts[0]) + len(HISTORY), n_snaps), dtype=np.int64)
    best_of = np.full(n_snaps, np.nan)
    n_deals = len(starts) - 1
    longest = np.max(starts[1:] - starts[:-1]) if n_deals > 0 else 0
    edges = np.linspace(0, n_deals, CHUNKS + 1).astype(np.int64)
    for c in numba.prange(CHUNKS):
        _answer_deals(
            edges[c],
            edges[c + 1],
            starts,
            events,
            snaps,
            counts,
            reply_starts,
            longest,
            ints,
            best_of,
        )
    return ints, best_of


@numba.njit(cache=True)
def _answer_deals(
    first: int,
    last: int,
    starts: np.ndarray,
    events: tuple,
    snaps: tuple,
    counts: tuple,
    reply_starts: np.ndarray,
    longest: int,
    ints: np.ndarray,
    best_of: np.ndarray,
) -> None:
    """answer() for deals first..last-1, with scratch space of its own."""
    as_of, order, snap_starts = snaps[1], snaps[2], snaps[3]
    time, flags = events[0], events[1]
    row = len(counts[0])
    scratch = np.empty((3, longest + 1), dtype=np.int64)
    best = np.empty(longest + 1)
    steps = np.empty((3, longest), dtype=np.int64)
    for d in range(first, last):
        if snap_starts[d] == snap_starts[d + 1]:
            continue
        lo, hi = starts[d], starts[d + 1]
        _prefix(lo, hi, events, scratch, best)
        senior_first = _senior_first(lo, hi, events)
        n_steps = _booked(lo, hi, events, steps)
        for s in range(snap_starts[d], snap_starts[d + 1]):
            j = order[s]
            t = as_of[j]
            p = _position(time, lo, hi, t)
            _windows(lo, p, t, time, flags, counts, ints, j)
            k = p - lo
            ints[row, j] = scratch[0, k]
            ints[row + 1, j] = reply_starts[d]
            ints[row + 2, j] = reply_starts[d] + scratch[1, k]
            ints[row + 3, j] = time[p - 1] if p > lo else MISSING
            ints[row + 4, j] = scratch[2, k]
            ints[row + 5, j] = senior_first
            _next_step(steps, n_steps, t, ints, j, row + 6)
            best_of[j] = best[k]
