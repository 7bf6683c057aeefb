"""The tables the partnership figures read, as the domains declare them (hub/meetings,
hub/joint_visits, hub/protection; the column names are the shared contract of issue 13).

Only the columns the figures read are named here, with the hub's own types, so that a time
binds and reads as UTC on SQLite as on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

from hub.db import UTCDateTime

meeting = sa.table(
    "meeting",
    sa.column("id", sa.String()),
    sa.column("council_code", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("scheduled_at", UTCDateTime()),
    sa.column("pre_birth", sa.Boolean()),
    sa.column("held_at", UTCDateTime()),
)

meeting_invitation = sa.table(
    "meeting_invitation",
    sa.column("meeting_id", sa.String()),
    sa.column("force_code", sa.String()),
    sa.column("attendance", sa.String()),
    sa.column("report_submitted_at", UTCDateTime()),
)

joint_visit_request = sa.table(
    "joint_visit_request",
    sa.column("council_code", sa.String()),
    sa.column("force_code", sa.String()),
    sa.column("needed_by", UTCDateTime()),
    sa.column("recorded_at", UTCDateTime()),
    sa.column("shared_at", UTCDateTime()),
    sa.column("response", sa.String()),
    sa.column("responded_at", UTCDateTime()),
    sa.column("outcome", sa.String()),
)

police_protection = sa.table(
    "police_protection",
    sa.column("id", sa.String()),
    sa.column("force_code", sa.String()),
    sa.column("child_id", sa.String()),
    sa.column("taken_at", UTCDateTime()),
    sa.column("placed_in", sa.String()),
    sa.column("placed_council_code", sa.String()),
    sa.column("consulted_before", sa.Boolean()),
    sa.column("alternatives_considered", sa.String()),
)

child = sa.table(
    "child",
    sa.column("id", sa.String()),
    sa.column("responsible_council_code", sa.String()),
)
