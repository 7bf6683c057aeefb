"""Which meetings, and which of their invitations, a caller's row scope reaches.

A council sees the meetings it convenes and those about its children: a born child it is
responsible for or hosts, or an unborn child whose mother's council it is. A force sees the
meetings it is invited to and, of their invitations, only its own (another force's answer and
report are that force's business). Schools and the roles without case rows see none. Applied
inside the queries, so a meeting out of scope is indistinguishable from one that does not exist.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import col

from hub.access.scope import RowScope
from hub.children.models import Child
from hub.meetings.models import Meeting, MeetingChild, MeetingInvitation

_child = aliased(Child, name="scope_meeting_child_row")
_meeting_child = aliased(MeetingChild, name="scope_meeting_child")
_invitation = aliased(MeetingInvitation, name="scope_meeting_invitation")


@functools.lru_cache(maxsize=1024)
def meetings(scope: RowScope) -> sa.ColumnElement[bool]:
    if scope.everything:
        return sa.true()
    about_our_child = (
        sa.exists()
        .where(
            col(_meeting_child.meeting_id) == Meeting.id,
            sa.or_(
                col(_meeting_child.mother_council_code).in_(scope.councils),
                sa.exists()
                .where(
                    col(_child.id) == _meeting_child.child_id,
                    sa.or_(
                        col(_child.responsible_council_code).in_(scope.councils),
                        col(_child.host_council_code).in_(scope.councils),
                    ),
                )
                .correlate_except(_child),
            ),
        )
        .correlate_except(_meeting_child)
    )
    invited = (
        sa.exists()
        .where(
            col(_invitation.meeting_id) == Meeting.id,
            col(_invitation.force_code).in_(scope.forces),
        )
        .correlate_except(_invitation)
    )
    clauses = []
    if scope.councils:
        clauses += [col(Meeting.council_code).in_(scope.councils), about_our_child]
    if scope.forces:
        clauses.append(invited)
    return sa.or_(*clauses) if clauses else sa.false()


@functools.lru_cache(maxsize=1024)
def invitations(scope: RowScope) -> sa.ColumnElement[bool]:
    """Of a visible meeting's invitations, those the caller sees: a council every force's, a
    force its own."""
    if scope.everything or scope.councils:
        return sa.true()
    return col(MeetingInvitation.force_code).in_(scope.forces)
