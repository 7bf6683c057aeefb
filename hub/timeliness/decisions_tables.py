"""The decisions figures as tables (Markdown and HTML) and CSV rows (`hub.timeliness.decisions`)."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence

from hub.closures import figures as closure_figures
from hub.timeliness import decisions
from hub.timeliness import formatting as fmt
from hub.timeliness.decisions import DecisionsData
from hub.timeliness.report_tables import Table
from hub.vetting import figures as vetting_figures

# Tables (Markdown and HTML) and CSV rows -----------------------------------------------------

Cell = str | int | float | None


def tables(data: DecisionsData, names: Mapping[str, str]) -> list[tuple[str, Table]]:
    """(title, table) for the Markdown and HTML report: closures, checks, escalations."""
    closures = Table(
        id="closures-table",
        headers=("Force", "Council", "Closures", "Agreed", "Challenged", "No response",
                 "Challenges answered", "Reopened", "Upheld", "Median time to answer"),
        rows=tuple(
            (fmt.org(r.force_code, names), fmt.org(r.council_code, names), str(r.closures),
             str(r.agreed), str(r.challenged), str(r.awaiting_response),
             str(r.challenges_answered), str(r.reopened), str(r.upheld),
             fmt.hours(r.median_hours_to_answer))
            for r in data.closures
        ),
        numeric=frozenset(range(2, 10)),
    )  # fmt: skip

    def checks(rows: Sequence[vetting_figures.GroupFigures], id_: str, who: str) -> Table:
        return Table(
            id=id_,
            headers=(who, "Open", "Open past target", "Median age (days)", "Oldest (days)",
                     "Completed", "Within target", "Carers waiting", "Adopters waiting"),
            rows=tuple(
                (fmt.org(r.organisation_code, names), str(r.open), str(r.open_over_target),
                 _days(r.open_median_age_days), _days(r.open_oldest_age_days), str(r.completed),
                 fmt.share(r.share_within_target), str(r.carers_waiting),
                 str(r.adopters_waiting))
                for r in rows
            ),
            numeric=frozenset(range(1, 9)),
        )  # fmt: skip

    escalations = Table(
        id="escalations-table",
        headers=("Target", "Kind", "Stage", "Owed by", "Waiting", "Raised"),
        rows=tuple(
            (r.target_id, fmt.kind(r.kind), fmt.stage(r.stage), fmt.org(r.owed_by, names),
             fmt.org(r.waiting, names), str(r.raised))
            for r in data.escalations
        ),
        numeric=frozenset({5}),
    )  # fmt: skip
    return [
        ("Investigation closures per force and council", closures),
        ("Police checks per force", checks(data.vetting_by_force, "vetting-force-table", "Force")),
        ("Police checks per council",
         checks(data.vetting_by_council, "vetting-council-table", "Council")),
        ("Escalations raised", escalations),
    ]  # fmt: skip


def _days(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


CSV_COLUMNS = (
    "closures", "agreed", "challenged", "awaiting_response", "challenges_answered",
    "challenges_open", "reopened", "upheld", "median_hours_to_answer", "completed",
    "open_median_age_days", "open_oldest_age_days", "open_over_target",
    "completed_within_target", "share_within_target", "carers_waiting", "adopters_waiting",
    "target_id", "kind", "stage", "owed_by", "waiting", "raised",
)  # fmt: skip


def csv_rows(data: DecisionsData) -> list[tuple[str, dict[str, Cell]]]:
    """(section, raw values by column) for the report's CSV, which formats them."""
    found: list[tuple[str, dict[str, Cell]]] = []
    for r in data.closures:
        counts: dict[str, Cell] = {
            name: getattr(r, name)
            for name in closure_figures._COUNTS  # noqa: SLF001
        }
        found.append(
            ("closures", {"force_code": r.force_code, "council_code": r.council_code, **counts,
                          "median_hours_to_answer": r.median_hours_to_answer})
        )  # fmt: skip
    for grouping, rows in (("force", data.vetting_by_force), ("council", data.vetting_by_council)):
        found.extend(
                ("vetting_checks", {
                    "grouping": grouping, f"{grouping}_code": g.organisation_code,
                    "open": g.open, "completed": g.completed,
                    "open_median_age_days": g.open_median_age_days,
                    "open_oldest_age_days": g.open_oldest_age_days,
                    "open_over_target": g.open_over_target,
                    "completed_within_target": g.completed_within_target,
                    "share_within_target": g.share_within_target,
                    "carers_waiting": g.carers_waiting, "adopters_waiting": g.adopters_waiting,
                    "target_id": data.vetting_target,
                })
            for g in rows
        )  # fmt: skip
    found += [
        ("escalations", {"target_id": e.target_id, "kind": e.kind, "stage": e.stage,
                         "owed_by": e.owed_by, "waiting": e.waiting, "raised": e.raised})
        for e in data.escalations
    ]  # fmt: skip
    return found


_TITLES = {
    "closures-by-force": "Investigation closures",
    "vetting-by-force": "Police checks for carers and adopters",
    "escalations-by-target": "Escalations",
}


def html_section(
    data: DecisionsData, names: Mapping[str, str], render_table: Callable[[Table], str]
) -> str:
    parts = [
        '<section id="decisions"><h2>Decisions and checks: closures, vetting, escalations</h2>'
    ]
    for chart, _, svg in decisions.decision_charts(data, names):
        if chart in _TITLES:
            parts.append(f"<h3>{html.escape(_TITLES[chart])}</h3>")
        caption = html.escape(decisions.CAPTIONS[chart], quote=True)
        parts.append(f"<figure>{svg}<figcaption>{caption}</figcaption></figure>")
    for title, table in tables(data, names):
        parts.append(f"<h3>{html.escape(title)}</h3>{render_table(table)}")
    parts.append("</section>")
    return "".join(parts)
