"""The report's medians and 90th percentiles on PostgreSQL: from the delays, in numpy.

A national year has about 10 million stage delays, and each grouping needs three ranks per
group and population. PostgreSQL's ordered-set aggregates sorted them in two statements of 5
seconds each. Here they are ranked from the delays `judged` works out from the stage facts'
binary copy. For each grouping the delays are put in sorted runs, one per (population, group),
by one sort of plain integers (`_in_runs`), and each run's three ranks are read off by position.

The ranks are `percentile_disc`'s: 1-based positions ceil(n/2) and n//2 + 1 (the two middle
delays, whose mean is the median) and ceil(9n/10) (the nearest-rank 90th percentile), exactly
as `stats` computes them in Python.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from hub.timeliness.targets import STAGES

# The four groupings (the stage facts' group keys, in this order), and the stages' delays in
# microseconds, with NO_DELAY for a stage not ended (or not applying).
GROUPINGS = ("force", "council", "kind", "month")
NO_DELAY = -(2**62)
RANKS_PER_POPULATION = 3  # the lower and upper middle delays, and the 90th percentile
_KIND = GROUPINGS.index("kind")


def __getattr__(name: str) -> int:
    # STAGE_COUNT: how many stages the declared kinds have (`kinds`), whenever it is asked.
    if name == "STAGE_COUNT":
        return len(STAGES)
    raise AttributeError(name)


class BadDelays(ValueError):
    """The stage facts' copy is not what `report_sql`'s stages part writes, or names a value
    not listed."""


@dataclasses.dataclass(frozen=True)
class Keys:
    """What the group keys stand for: each grouping's possible values, and the database's
    `hashtext` of each (the stages part writes the hash, four bytes, not the text)."""

    codes: Sequence[str]  # organisations: forces and councils
    kinds: Sequence[str]  # in `targets.KINDS` order, as `report_sql.population_table` has them
    months: Sequence[str]
    hashes: Mapping[str, int]

    def names(self, grouping: str) -> Sequence[str]:
        return (
            self.months if grouping == "month" else self.kinds if grouping == "kind" else self.codes
        )

    def positions(self, grouping: str, hashed: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Each hash's value as its position in `names(grouping)`, from 1."""
        table = np.asarray([self.hashes[name] for name in self.names(grouping)], dtype=np.int64)
        if np.unique(table).size != table.size:
            # Two of a few hundred codes sharing a 32-bit hash: a chance of about 1 in 100,000.
            raise BadDelays(
                f"two {grouping} values share a hash: the report cannot tell them apart"
            )
        if not table.size:
            if hashed.size:
                raise BadDelays(f"a stage fact names a {grouping} not listed")
            return hashed
        order = np.argsort(table)
        at = np.minimum(np.searchsorted(table[order], hashed), table.size - 1)
        if (table[order][at] != hashed).any():
            raise BadDelays(f"a stage fact names a {grouping} not listed")
        return order[at] + 1


def ranks(
    positions: Sequence[npt.NDArray[np.int64]],
    delays: Sequence[npt.NDArray[np.int64]],
    *,
    keys: Keys,
    population_of: Sequence[Sequence[int]],
    populations: int,
) -> dict[str, dict[str, list[float | None]]]:
    """grouping -> group -> per population in order, its three ranked delays (None if empty).

    `positions` are the rows' force, council, kind and month as places in `Keys` (from 1:
    `Keys.positions`), and `delays` each stage's delay (NO_DELAY: none).
    `population_of[stage][kind]` is the population a stage's delay counts in for a record of
    that kind (its position in `keys.kinds`, from 1), or -1 for none. Every group with a row
    is listed, delays or not.
    """
    group_keys = list(positions)
    table = np.asarray(population_of, dtype=np.int64)  # stage x (kind position)
    values, where, pops = [], [], []
    for stage in range(len(delays)):
        ended = np.flatnonzero(delays[stage] != NO_DELAY)
        population = table[stage][group_keys[_KIND][ended]]
        counted = population >= 0
        values.append(delays[stage][ended[counted]])
        where.append(ended[counted])
        pops.append(population[counted])
    value = np.concatenate(values)
    row = np.concatenate(where)
    pop = np.concatenate(pops)
    found: dict[str, dict[str, list[float | None]]] = {}
    for index, grouping in enumerate(GROUPINGS):
        key = group_keys[index]
        width = int(key.max(initial=0)) + 1
        run = pop * width + key[row]
        counts = np.bincount(run, minlength=populations * width)
        found[grouping] = _groups(
            _in_runs(value, run, runs=populations * width),
            counts,
            present=np.flatnonzero(np.bincount(key)),
            width=width,
            populations=populations,
            names=keys.names(grouping),
        )
    return found


def _in_runs(
    values: npt.NDArray[np.int64], run: npt.NDArray[np.int64], *, runs: int
) -> npt.NDArray[np.int64]:
    """`values` laid out in runs (run 0 first), each run sorted.

    One sort of one 64-bit key per delay, the run above the delay's offset from the smallest:
    numpy sorts plain integers several times faster than it orders them by an index (and the
    index then has to gather the values). A spread too wide to share 63 bits with the run
    (delays over a century apart) is ordered by both keys instead."""
    lowest = int(values.min(initial=0))
    shift = (int(values.max(initial=0)) - lowest).bit_length()
    if shift + max(runs - 1, 0).bit_length() > 63:  # noqa: PLR2004 - a non-negative int64
        return values[np.lexsort((values, run))]
    keyed = run.astype(np.int64) << shift
    keyed |= values - lowest
    keyed.sort()
    keyed &= (1 << shift) - 1
    keyed += lowest
    return keyed


def _groups(
    values: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    *,
    present: npt.NDArray[np.int64],
    width: int,
    populations: int,
    names: Sequence[str],
) -> dict[str, list[float | None]]:
    """Each present group's three ranks per population, from `values` laid out in sorted runs,
    one per (population, group), population-major."""
    ends = np.cumsum(counts)
    held = np.flatnonzero(counts)
    n = counts[held]
    # 0-based within each run: ceil(n/2) - 1, n//2, ceil(9n/10) - 1.
    at = np.stack([(n + 1) // 2 - 1, n // 2, -(-9 * n // 10) - 1], axis=1)
    picked = values[at + (ends[held] - n)[:, None]].astype(np.float64).tolist()
    ranked: dict[int, list[float]] = dict(zip(held.tolist(), picked, strict=True))
    groups: dict[str, list[float | None]] = {}
    for group in present.tolist():
        entries: list[float | None] = []
        for population in range(populations):
            entries += ranked.get(population * width + group, [None, None, None])
        groups[names[group - 1]] = entries
    return groups
