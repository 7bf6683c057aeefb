"""Decisions and checks in the sharing report (issue 14 item 5): closures, vetting, escalations.

The figures are those the GraphQL figures serve (`hub.closures.figures`, `hub.vetting.figures`,
`hub.escalation.service.figures`), read beside the delays for the same period and scope, and
drawn in the partnership charts' style (`hub.partnership.charts`): one ``<svg>`` per chart,
``data-chart`` naming it, each series a ``<rect>`` marked ``data-series``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from hub.closures import figures as closure_figures
from hub.escalation import service as escalation_service
from hub.escalation.service import EscalationCount
from hub.partnership.charts import ABSENT, IN_PERSON, UNANSWERED, VIRTUAL, WRITTEN, Chart
from hub.partnership.charts import _stacked as stacked
from hub.timeliness import formatting as fmt
from hub.timeliness.targets import TargetSet
from hub.vetting import figures as vetting_figures


@dataclasses.dataclass(frozen=True)
class DecisionsData:
    closures: list[closure_figures.Figures] = dataclasses.field(default_factory=list)
    vetting_by_force: tuple[vetting_figures.GroupFigures, ...] = ()
    vetting_by_council: tuple[vetting_figures.GroupFigures, ...] = ()
    vetting_target: str | None = None  # the target's id (T11), if the agreement sets one
    escalations: list[EscalationCount] = dataclasses.field(default_factory=list)


async def measure(
    session: AsyncSession,
    *,
    period_from: dt.date,
    period_to: dt.date,
    start: dt.datetime,
    end: dt.datetime,
    as_of: dt.datetime,
    force_code: str | None,
    council_code: str | None,
    targets: TargetSet,
) -> DecisionsData:
    closures = await closure_figures.figures(
        session,
        period_from=period_from,
        period_to=period_to,
        force_code=force_code,
        council_code=council_code,
    )
    vetting = await vetting_figures.figures(
        session,
        scope=vetting_figures.FiguresScope(force_code=force_code, council_code=council_code),
        completed_from=start,
        completed_until=end,
        as_of=as_of,
        targets=targets,
    )
    forces = None if force_code is None else frozenset({force_code})
    councils = None if council_code is None else frozenset({council_code})
    escalations = await escalation_service.figures(
        session,
        forces=forces if forces or councils else None,
        councils=councils if forces or councils else None,
        raised_from=start,
        raised_to=end,
    )
    return DecisionsData(
        closures=closures.rows,
        vetting_by_force=vetting.by_force,
        vetting_by_council=vetting.by_council,
        vetting_target=None if vetting.target is None else vetting.target.id,
        escalations=escalations,
    )


def _sum_closures(
    rows: Sequence[closure_figures.Figures], key: str
) -> list[closure_figures.Figures]:
    grouped: dict[str, closure_figures.Figures] = {}
    for row in rows:
        code = getattr(row, key) or ""
        into = grouped.setdefault(code, closure_figures.Figures(None, None))
        for name in closure_figures._COUNTS:  # noqa: SLF001 - the counts the figures keep
            setattr(into, name, getattr(into, name) + getattr(row, name))
        into.hours_to_answer.extend(row.hours_to_answer)
        if key == "force_code":
            into.force_code = code
        else:
            into.council_code = code
    return [grouped[code] for code in sorted(grouped)]


def closure_chart(
    rows: Sequence[closure_figures.Figures], key: str, names: Mapping[str, str]
) -> str:
    """Per force (or council): closures agreed, challenged, not answered yet."""
    who = "force" if key == "force_code" else "council"
    bars = []
    for row in _sum_closures(rows, key):
        median = row.median_hours_to_answer
        answer = f"answer {fmt.hours(median)}" if median is not None else "none answered"
        bars.append(
            (
                fmt.org(getattr(row, key), names),
                [
                    ("agreed", IN_PERSON, row.agreed),
                    ("challenged", ABSENT, row.challenged),
                    ("no-response", UNANSWERED, row.awaiting_response),
                ],
                (
                    f"{row.challenged} challenged, {row.challenges_answered} answered, "
                    f"{row.reopened} reopened; {answer}"
                ),
            )
        )
    legend = (("agreed", IN_PERSON), ("challenged", ABSENT), ("no response", UNANSWERED))
    title = f"Investigation closures per {who}: the council agreed, challenged, not yet answered"
    return stacked(f"closures-by-{who}", title, bars, legend)


def vetting_chart(
    rows: Sequence[vetting_figures.GroupFigures], who: str, names: Mapping[str, str]
) -> str:
    """Per force (or council): checks completed within and past the target, open within and
    past it; beside each bar the open checks' median age and the share completed in time."""
    bars = []
    for row in sorted(rows, key=lambda r: (-r.open_over_target, r.organisation_code)):
        age = row.open_median_age_days
        note = f"{row.open} open" + (f", median {age:.0f} days" if age is not None else "")
        note += f"; {fmt.share(row.share_within_target)} in time"
        if who == "council":
            note += f"; waiting: {row.carers_waiting} carers, {row.adopters_waiting} adopters"
        bars.append(
            (
                fmt.org(row.organisation_code, names),
                [
                    ("completed-in-time", IN_PERSON, row.completed_within_target),
                    ("completed-late", WRITTEN, row.completed - row.completed_within_target),
                    ("open-in-time", VIRTUAL, row.open - row.open_over_target),
                    ("open-overdue", ABSENT, row.open_over_target),
                ],
                note,
            )
        )
    legend = (
        ("completed in time", IN_PERSON),
        ("completed late", WRITTEN),
        ("open", VIRTUAL),
        ("open past target", ABSENT),
    )
    title = f"Police checks for carers and adopters per {who}: completed and open"
    return stacked(f"vetting-by-{who}", title, bars, legend)


_PALETTE = (ABSENT, UNANSWERED, WRITTEN, VIRTUAL, IN_PERSON, "#56B4E9", "#F0E442", "#000000")


def escalation_chart(rows: Sequence[EscalationCount], names: Mapping[str, str]) -> str:
    """Per organisation owing the answer: the escalations raised, by target (kind of stage)."""
    targets = sorted({row.target_id for row in rows})
    colours = {t: _PALETTE[i % len(_PALETTE)] for i, t in enumerate(targets)}
    tally: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        tally[row.owed_by][row.target_id] += row.raised
    ordered = sorted(tally.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    bars = [
        (
            fmt.org(code, names),
            [(f"target-{t}", colours[t], counts.get(t, 0)) for t in targets],
            f"{sum(counts.values())} raised",
        )
        for code, counts in ordered
    ]
    legend = [(t, colours[t]) for t in targets]
    title = "Escalations raised per organisation owing the answer, by target"
    return stacked("escalations-by-target", title, bars, legend)


def decision_charts(data: DecisionsData, names: Mapping[str, str]) -> list[Chart]:
    """Every decisions chart, in the report's order (each says so when it has no records)."""
    return [
        ("closures-by-force", None, closure_chart(data.closures, "force_code", names)),
        ("closures-by-council", None, closure_chart(data.closures, "council_code", names)),
        ("vetting-by-force", data.vetting_target,
         vetting_chart(data.vetting_by_force, "force", names)),
        ("vetting-by-council", data.vetting_target,
         vetting_chart(data.vetting_by_council, "council", names)),
        ("escalations-by-target", None, escalation_chart(data.escalations, names)),
    ]  # fmt: skip


CAPTIONS = {
    "closures-by-force": "Each force's closures of investigations involving children: the "
    "council agreed, challenged, or has not answered; beside each bar the challenges answered, "
    "the investigations reopened after a challenge and the median time to answer.",
    "closures-by-council": "The same per council responsible for the children.",
    "vetting-by-force": "Each force's police checks for carers and adopters: completed within "
    "the target (T11) or later, open within it or past it; beside each bar the open checks' "
    "median age and the share completed in time.",
    "vetting-by-council": "The same per requesting council, with the carers and adopters "
    "waiting on a check.",
    "escalations-by-target": "Escalations raised in the period (a stage not ended by its "
    "deadline), per organisation owing the answer, by target.",
}
