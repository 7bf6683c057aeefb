"""The records that may lie in a burst, found in numpy from the stages part's copy.

The batching detector (`batching`) runs in Python, per force, on candidates rather than on a
national year of shared records. The candidates used to come from a statement of window
functions over the stage facts (seven seconds of a national report, reading and sorting the
same rows the stages part copies out anyway). Here they come from the copy's columns: each
shared record's force (its key's hash), event and shared time, in microseconds.

In two steps, so that the costly part runs on few rows, exactly as that statement did:

* a window (the same force's records shared within `window` from one) can be a burst only if
  it holds `min_records`: on rows sorted by force and shared time, the record that many places
  on must fall inside it (exact for the first of equal times, which is enough: a record is
  *covered* when the latest such dense time at or before it, equal times included, is within
  `window` of it);
* among covered records, a window from each (from its first equal time to `window` later) is
  an *anchor* when it holds `min_records` and its events span `min_event_span`; a record is a
  candidate when an anchor's window covers it (an anchor from `window` before it up to its last
  equal time).

Every record of a window that could be a burst is a candidate, so the detector, which decides,
finds the bursts it would find among all the records.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Force and time in one sortable integer: the force's rank above the bits of the time.
_TIME_BITS = 52


def candidates(
    force: npt.NDArray[np.int64],
    shared: npt.NDArray[np.int64],
    event: npt.NDArray[np.int64],
    *,
    window: int,
    min_records: int,
    min_span: int,
) -> npt.NDArray[np.int64]:
    """The positions (into the given columns) of the records that may lie in a burst.

    `force` identifies each record's force (any integer), `shared` and `event` are times in
    microseconds, `window` and `min_span` durations in microseconds.
    """
    if shared.size < min_records:
        return np.zeros(0, dtype=np.int64)
    _, rank = np.unique(force, return_inverse=True)
    # Times from `window` on, so that no time less `window` reaches a lower force's keys.
    times = shared - shared.min() + window
    if int(times.max()) >= 1 << _TIME_BITS or int(rank.max()) >= 1 << (63 - _TIME_BITS):
        raise ValueError("too many forces or too long a span of shared times to key")
    keys = (rank.astype(np.int64).reshape(-1) << _TIME_BITS) | times
    # One sort of one integer (equal keys in any order: the definition does not tell them
    # apart).
    order = np.argsort(keys)
    keys, events = keys[order], event[order]
    covered = np.flatnonzero(_covered(keys, min_records, window))
    keys, events = keys[covered], events[covered]
    first_equal = np.searchsorted(keys, keys, side="left")
    last_equal = np.searchsorted(keys, keys, side="right")  # one past
    ahead = np.searchsorted(keys, keys + window, side="right")
    span = _range_max(events, first_equal, ahead) - _range_min(events, first_equal, ahead)
    anchor = (ahead - first_equal >= min_records) & (span >= min_span)
    anchors = np.concatenate(([0], np.cumsum(anchor)))
    behind = np.searchsorted(keys, keys - window, side="left")
    member = anchors[last_equal] - anchors[behind] > 0
    return np.sort(order[covered[member]])


def _covered(keys: npt.NDArray[np.int64], min_records: int, window: int) -> npt.NDArray[np.bool_]:
    """Whether a dense window's start (one holding `min_records`) lies within `window` before
    each record, equal times included."""
    n = keys.size
    dense = np.zeros(n, dtype=np.bool_)
    reach = n - min_records + 1
    # A different force's key lies beyond any window: the keys differ in the force's bits.
    dense[:reach] = keys[min_records - 1 :] <= keys[:reach] + window
    latest = np.maximum.accumulate(np.where(dense, keys, -1))
    last_equal = np.searchsorted(keys, keys, side="right") - 1
    return latest[last_equal] >= keys - window


def _range_max(
    values: npt.NDArray[np.int64], lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """max(values[lo:hi]) for each pair (hi > lo), from a sparse table of powers of two."""
    return _range(values, lo, hi, np.maximum)


def _range_min(
    values: npt.NDArray[np.int64], lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    return _range(values, lo, hi, np.minimum)


def _range(
    values: npt.NDArray[np.int64],
    lo: npt.NDArray[np.int64],
    hi: npt.NDArray[np.int64],
    pick: np.ufunc,
) -> npt.NDArray[np.int64]:
    found = np.empty(lo.size, dtype=np.int64)
    if not lo.size:
        return found
    length = hi - lo
    level = np.floor(np.log2(length)).astype(np.int64)
    # Guard the float logarithm at exact powers of two.
    level -= (1 << level) > length
    level += (1 << (level + 1)) <= length
    table = values
    for k in range(int(level.max()) + 1):
        if k:
            half = 1 << (k - 1)
            table = pick(table[:-half], table[half:])
        at = np.flatnonzero(level == k)
        if at.size:
            found[at] = pick(table[lo[at]], table[hi[at] - (1 << k)])
    return found
