"""A synthetic national year of working together, COPYed in for `bench-report`.

Strategy discussions and initial conferences at the volumes STANDARDS.md gives (230,590 and
72,100 a year in England); review conferences, joint visit requests and police protections at
plausible volumes (no national figure: about one and a half reviews per initial conference, a
joint visit for two in five enquiries, some 25,000 protections). Each meeting invites the force
that covers the council. Most forces attend, answer and consult; four do as the letter says:
Dorset misses a third of conferences, Cleveland sends written reports to strategy discussions
and never attends a pre-birth conference, Essex leaves most joint visit requests unanswered,
Devon and Cornwall takes children into protection without a discussion four times in ten.
Every value is invented.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import uuid
from collections.abc import Iterator
from typing import Any

ABSENT_FORCE, WRITTEN_FORCE = "DORSET", "CLEVELAND"
UNANSWERING_FORCE, UNCONSULTING_FORCE = "ESSEX", "DEVON_CORNWALL"
CHUNK = 50_000
PRE_BIRTH_SHARE = 0.08

MEETING = (
    "id", "council_code", "council_reference", "idempotency_key", "payload_hash", "kind",
    "scheduled_at", "mode", "strategy_discussion_id", "pre_birth", "recorded_at", "shared_at",
    "held_at",
)  # fmt: skip
MEETING_CHILD = ("id", "meeting_id", "child_id", "expected_delivery_date", "mother_council_code")
INVITATION = (
    "meeting_id", "force_code", "invited_at", "response", "response_reason", "responded_at",
    "report_submitted_at", "report_text", "attendance", "attendee_role", "attendance_recorded_at",
)  # fmt: skip
JOINT_VISIT = (
    "id", "council_code", "council_reference", "idempotency_key", "payload_hash", "force_code",
    "child_id", "kind", "urgency", "needed_by", "recorded_at", "shared_at", "response",
    "response_reason", "officer_role", "responded_at", "outcome", "outcome_at",
)  # fmt: skip
PROTECTION = (
    "id", "force_code", "police_reference", "idempotency_key", "payload_hash", "child_id",
    "taken_at", "recorded_at", "shared_at", "placed_in", "placed_council_code",
    "consulted_before", "consulted_at", "consulted_council_code", "consulted_role",
    "alternatives_considered", "pushed_by_client",
)  # fmt: skip
CHILD = (
    "id", "given_name", "family_name", "date_of_birth", "nhs_number", "responsible_council_code",
    "host_council_code", "school_code", "looked_after", "created_at", "updated_at",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Volumes:
    strategy_discussions: int = 230_590
    initial_conferences: int = 72_100
    review_conferences: int = 110_000
    joint_visits: int = 90_000
    protections: int = 25_000

    def line(self) -> str:
        return (
            f"{self.strategy_discussions:,} strategy discussions, {self.initial_conferences:,} "
            f"initial and {self.review_conferences:,} review conferences, "
            f"{self.joint_visits:,} joint visit requests, {self.protections:,} police protections"
        )


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


_MODES = ("in_person", "video", "phone", "written_report_only", "apologies", "did_not_attend")
_USUAL = (0.45, 0.25, 0.05, 0.12, 0.08, 0.05)


@dataclasses.dataclass
class _Discussion:
    id: str
    council: str
    force: str
    at: dt.datetime
    child: str | None  # None: an unborn child


class Year:
    """The rows, table by table, as tuples in the columns above."""

    def __init__(
        self, councils: list[tuple[str, str]], rng: random.Random, end: dt.datetime
    ) -> None:
        self.councils, self.rng, self.end = councils, rng, end
        self.start = end - dt.timedelta(days=365)
        self.rows: dict[str, list[Any]] = {
            t: [] for t in ("child", "meeting", "meeting_child", "invitation", "jv", "pp")
        }

    def _when(self, after: dt.datetime | None = None, days: tuple[float, float] = (0, 0)) -> Any:
        if after is None:
            return self.start + dt.timedelta(seconds=self.rng.uniform(0, 364 * 86400))
        return after + dt.timedelta(days=self.rng.uniform(*days))

    def _child(self, council: str, at: dt.datetime) -> str:
        child_id = _uuid(self.rng)
        self.rows["child"].append(
            (child_id, "Bench", "Synthetic", dt.date(2016, 1, 1), None, council, None, None,
             False, at, at)
        )  # fmt: skip
        return child_id

    def _attendance(self, force: str, kind: str, pre_birth: bool) -> str:
        rng = self.rng
        if force == WRITTEN_FORCE and pre_birth and kind != "strategy_discussion":
            return rng.choice(("apologies", "did_not_attend"))
        if force == WRITTEN_FORCE and kind == "strategy_discussion" and rng.random() < 0.8:  # noqa: PLR2004
            return "written_report_only"
        if force == ABSENT_FORCE and kind != "strategy_discussion" and rng.random() < 0.35:  # noqa: PLR2004
            return rng.choice(("apologies", "did_not_attend"))
        return rng.choices(_MODES, _USUAL)[0]

    def meeting(self, kind: str, of: _Discussion, at: dt.datetime, number: int) -> str:
        rng = self.rng
        meeting_id = _uuid(rng)
        pre_birth = of.child is None
        held = at + dt.timedelta(hours=1)
        held_at = held if held < self.end else None
        # A review months on may lie ahead: scheduled, recorded already, not held yet.
        recorded = min(at - dt.timedelta(days=rng.uniform(1, 10)), self.end)
        discussion = None if kind == "strategy_discussion" else of.id
        self.rows["meeting"].append(
            (meeting_id, of.council, f"BMT-{number:08d}", None, "0" * 64, kind, at, "in_person",
             discussion, pre_birth, recorded, recorded, held_at)
        )  # fmt: skip
        due = (at + dt.timedelta(days=60)).date() if pre_birth else None
        self.rows["meeting_child"].append(
            (_uuid(rng), meeting_id, of.child, due, of.council if pre_birth else None)
        )
        attendance = self._attendance(of.force, kind, pre_birth) if held_at else None
        sent = None
        if attendance == "written_report_only" or rng.random() < 0.5:  # noqa: PLR2004
            sent = at - dt.timedelta(hours=rng.uniform(-6, 48))
            sent = sent if sent < self.end else None
        recorded_attendance = held_at + dt.timedelta(hours=2) if held_at else None
        role = "sergeant" if attendance in {"in_person", "video", "phone"} else None
        self.rows["invitation"].append(
            (meeting_id, of.force, recorded, None, None, None, sent,
             "Synthetic report." if sent else None, attendance, role,
             recorded_attendance if recorded_attendance and recorded_attendance < self.end
             else None)
        )  # fmt: skip
        return meeting_id

    def discussions(self, count: int) -> Iterator[_Discussion]:
        for number in range(count):
            council, force = self.rng.choice(self.councils)
            at = self._when()
            born = self.rng.random() >= PRE_BIRTH_SHARE
            child = self._child(council, at) if born else None
            found = _Discussion("", council, force, at, child)
            found.id = self.meeting("strategy_discussion", found, at, number)
            yield found

    def joint_visits(self, count: int, first: int) -> None:
        rng = self.rng
        for number in range(first, first + count):
            council, force = rng.choice(self.councils)
            recorded = self._when()
            shared = recorded + dt.timedelta(minutes=2)
            ignored = 0.6 if force == UNANSWERING_FORCE else 0.05
            answered = rng.random() >= ignored
            responded = shared + dt.timedelta(hours=rng.expovariate(1 / 3)) if answered else None
            if responded is not None and responded >= self.end:
                answered, responded = False, None
            assigned = answered and rng.random() < 0.85  # noqa: PLR2004
            response = ("officer_assigned" if assigned else "not_available") if answered else None
            outcome = None
            if answered:
                choices = ("held_jointly", "social_worker_alone", "cancelled")
                weights = (0.8, 0.15, 0.05) if assigned else (0.0, 0.7, 0.3)
                outcome = rng.choices(choices, weights)[0]
            at = responded + dt.timedelta(hours=20) if responded else None
            outcome_at = at if at is not None and at < self.end else None
            self.rows["jv"].append(
                (_uuid(rng), council, f"BJV-{number:08d}", None, "0" * 64, force,
                 self._child(council, recorded), "visit", "within_24_hours",
                 recorded + dt.timedelta(hours=24), recorded, shared, response,
                 None if assigned or not answered else "no_officer_available",
                 "constable" if assigned else None, responded,
                 outcome if outcome_at else None, outcome_at)
            )  # fmt: skip

    def protections(self, count: int) -> None:
        rng = self.rng
        for number in range(count):
            council, force = rng.choice(self.councils)
            taken = self._when()
            without = rng.random() < (0.4 if force == UNCONSULTING_FORCE else 0.05)
            consulted = None if without else taken - dt.timedelta(minutes=30)
            self.rows["pp"].append(
                (_uuid(rng), force, f"BPP-{number:08d}", None, "0" * 64,
                 self._child(council, taken), taken, taken + dt.timedelta(hours=1),
                 taken + dt.timedelta(hours=1, minutes=5), "foster_care", council, not without,
                 consulted, None if without else council,
                 None if without else "emergency_duty_team",
                 "none" if without else "family_or_friends", "bench")
            )  # fmt: skip


async def _copy(connection: Any, table: str, rows: list[Any], columns: tuple[str, ...]) -> None:
    if rows:
        await connection.copy_records_to_table(table, records=rows, columns=columns)
        rows.clear()


async def _flush(connection: Any, year: Year) -> None:
    rows = year.rows
    await _copy(connection, "child", rows["child"], CHILD)
    await _copy(connection, "meeting", rows["meeting"], MEETING)
    await _copy(connection, "meeting_child", rows["meeting_child"], MEETING_CHILD)
    await _copy(connection, "meeting_invitation", rows["invitation"], INVITATION)
    await _copy(connection, "joint_visit_request", rows["jv"], JOINT_VISIT)
    await _copy(connection, "police_protection", rows["pp"], PROTECTION)


async def load(
    connection: Any,
    councils: list[tuple[str, str]],
    *,
    volumes: Volumes,
    seed: int,
    end: dt.datetime,
) -> None:
    """COPY the year in through `connection` (asyncpg's own)."""
    # Its own sequence: the police records drew their ids from `seed` itself.
    year = Year(councils, random.Random(f"partnership-{seed}"), end)  # noqa: S311 - synthetic
    discussions: list[_Discussion] = []
    for discussion in year.discussions(volumes.strategy_discussions):
        discussions.append(discussion)
        if len(year.rows["meeting"]) >= CHUNK:
            await _flush(connection, year)
    number = volumes.strategy_discussions
    # Initial conferences within about 15 working days of their discussion; reviews months on.
    conferences: list[tuple[_Discussion, dt.datetime]] = []
    if discussions:
        for _ in range(volumes.initial_conferences):
            of = year.rng.choice(discussions)
            at = of.at + dt.timedelta(days=year.rng.uniform(5, 28))
            year.meeting("initial_child_protection_conference", of, at, number)
            conferences.append((of, at))
            number += 1
            if len(year.rows["meeting"]) >= CHUNK:
                await _flush(connection, year)
    await _flush(connection, year)  # the discussions and initial conferences are referenced
    if conferences:
        for _ in range(volumes.review_conferences):
            of, initial = year.rng.choice(conferences)
            at = initial + dt.timedelta(days=year.rng.uniform(80, 200))
            year.meeting("review_child_protection_conference", of, at, number)
            number += 1
            if len(year.rows["meeting"]) >= CHUNK:
                await _flush(connection, year)
    year.joint_visits(volumes.joint_visits, 0)
    year.protections(volumes.protections)
    await _flush(connection, year)
