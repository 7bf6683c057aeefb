"""How figures read in reports: hours, shares, moments and names, the same in every format."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from hub.timeliness.calendar import LONDON
from hub.timeliness.stats import Group, StageStats
from hub.timeliness.targets import KINDS, STAGES

DASH = "\u2013"  # an en dash marks "no figure", so it cannot be mistaken for zero


def hours(value: float | None) -> str:
    if value is None:
        return DASH
    if abs(value) < 10:  # noqa: PLR2004 - below ten hours the minutes matter
        return f"{value:.1f} h"
    return f"{value:,.0f} h"


def share(value: float | None) -> str:
    return DASH if value is None else f"{value:.0%}"


def local_time(moment: dt.datetime | None) -> str:
    """A moment as people in England and Wales read it, with GMT or BST said."""
    if moment is None:
        return DASH
    return moment.astimezone(LONDON).strftime("%Y-%m-%d %H:%M %Z")


def utc_iso(moment: dt.datetime | None) -> str:
    """A moment for machines: ISO 8601 in UTC."""
    if moment is None:
        return ""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def org(code: str | None, names: Mapping[str, str]) -> str:
    if code is None:
        return "all"
    name = names.get(code)
    return f"{name} ({code})" if name else code


def kind(code: str | None) -> str:
    return "all" if code is None else KINDS.get(code, code)


def stage(code: str) -> str:
    return STAGES.get(code, code)


def group_label(group: Group, names: Mapping[str, str]) -> str:
    """The grouped values of a row, e.g. "Gwent Police (GWENT), 2025-03"."""
    parts = [
        org(group.force_code, names) if group.force_code else None,
        org(group.council_code, names) if group.council_code else None,
        group.month,
    ]
    return ", ".join(part for part in parts if part) or "all"


def breaches_text(row: StageStats) -> str:
    return str(row.breached) if row.target_id else DASH
