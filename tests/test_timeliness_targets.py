"""The agreement's targets: the shipped defaults, validation, and deadlines in each unit."""

import datetime as dt
import hashlib
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hub.timeliness.targets import (
    Target,
    TargetsError,
    Unit,
    load_targets,
    parse_targets,
)

SHIPPED = Path(__file__).resolve().parents[1] / "auth" / "targets.toml"
LONDON = ZoneInfo("Europe/London")


def uk(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=LONDON).astimezone(dt.UTC)


def target(**overrides: object) -> str:
    fields: dict[str, object] = {
        "id": "X1",
        "kind": "domestic_abuse",
        "stage": "event_to_shared",
        "unit": "hours",
        "limit": 24,
        "description": "Shared within a day.",
        "source": "A test.",
    }
    fields.update(overrides)
    lines = ["[[targets]]"]
    for key, value in fields.items():
        if value is None:
            continue
        rendered = f'"{value}"' if isinstance(value, str) else str(value).lower()
        lines.append(f"{key} = {rendered}")
    return "\n".join(lines) + "\n"


def document(*targets: str) -> str:
    return "schema = 1\n" + "\n".join(targets)


# The shipped file -------------------------------------------------------------------------


def test_the_shipped_targets_load() -> None:
    targets = load_targets(SHIPPED)
    ids = [t.id for t in targets.targets]
    assert {"T5", "T6", "T8", "T9"} <= set(ids)
    assert len(ids) == len(set(ids))
    assert all(t.source and t.description for t in targets.targets)
    assert targets.version == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert targets.short_version == targets.version[:12]


def test_the_shipped_defaults_follow_the_standards() -> None:
    targets = load_targets(SHIPPED)
    t5, t6, t8, t9 = (targets.get(i) for i in ("T5", "T6", "T8", "T9"))
    assert (t5.kind, t5.stage, t5.unit, t5.limit) == (
        "missing_episode",
        "returned_to_return_interview",
        Unit.HOURS,
        72,
    )
    assert not t5.unconfirmed  # DfE statutory guidance
    assert (t6.kind, t6.stage, t6.unit, t6.limit) == (
        "missing_episode",
        "event_to_shared",
        Unit.HOURS,
        1,
    )
    assert t6.unconfirmed
    assert "local" in t6.source
    assert (t8.kind, t8.unit, t8.limit) == ("domestic_abuse", Unit.NEXT_SCHOOL_DAY, None)
    assert t8.school_day_start == dt.time(8, 30)
    assert "Victims and Prisoners Act 2024" in t8.source
    assert (t9.kind, t9.stage, t9.limit) == ("domestic_abuse", "event_to_shared", 24)
    assert t9.unconfirmed
    assert [t.id for t in targets.for_stage("domestic_abuse", "event_to_shared")] == ["T8", "T9"]
    investigations = [t for t in targets.targets if t.kind == "investigation_status"]
    assert investigations
    assert all(t.unconfirmed for t in investigations)


def test_the_version_follows_the_content() -> None:
    one = parse_targets(document(target()))
    assert parse_targets(document(target())).version == one.version
    assert parse_targets(document(target(limit=25))).version != one.version


# Validation -------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    text = document(
        target(id="A", kind="parking"),
        target(id="B", stage="event_to_lunch"),
        target(id="C", unit="fortnights"),
        target(id="D", source=None),
        target(id="E", unit="next_school_day"),
        target(id="F", unit="working_days", limit=1.5),
        target(id="G", limit=-3),
        target(id="H", limit=True),
        target(id="I", kind="incident", stage="returned_to_return_interview"),
        target(id="J", colour="red"),
        target(id="K"),
        target(id="K"),
        target(id="L", school_day_start="08:30"),
        target(id="M", unit="next_school_day", limit=None, school_day_start="half past"),
    )
    with pytest.raises(TargetsError) as caught:
        parse_targets(text, origin="auth/targets.toml")
    problems = caught.value.problems
    expected = [
        "target 1 (A): unknown kind 'parking'",
        "target 2 (B): unknown stage 'event_to_lunch'",
        "target 3 (C): unknown unit 'fortnights'",
        "target 4 (D): missing 'source'",
        "target 5 (E): 'limit' does not apply to next_school_day",
        "target 6 (F): 'limit' must be a whole number of working_days",
        "target 7 (G): 'limit' must be a positive number of hours",
        "target 8 (H): 'limit' must be a positive number of hours",
        "target 9 (I): stage 'returned_to_return_interview' does not apply to kind 'incident'",
        "target 10 (J): unknown key 'colour'",
        "target 12 (K): duplicate id",
        "target 13 (L): 'school_day_start' applies only to next_school_day",
        "target 14 (M): 'school_day_start' must be a time",
    ]
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)
    message = str(caught.value)
    assert message.startswith("auth/targets.toml: 13 problem(s):")
    assert all(problem in message for problem in problems)


def test_a_document_without_targets_or_schema_is_refused() -> None:
    with pytest.raises(TargetsError) as caught:
        parse_targets("owner = 'nobody'\n")
    assert caught.value.problems == (
        "schema must be 1",
        "unknown key 'owner'",
        "no [[targets]] given",
    )


@pytest.mark.parametrize("limit", ["inf", "nan", "100000"])
def test_absurd_limits_are_refused(limit: str) -> None:
    with pytest.raises(TargetsError, match="positive number"):
        parse_targets(document(target()).replace("limit = 24", f"limit = {limit}"))


def test_broken_toml_is_one_problem() -> None:
    with pytest.raises(TargetsError) as caught:
        parse_targets("schema = \n")
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("not valid TOML")


def test_school_day_start_accepts_a_toml_time() -> None:
    text = document(target(unit="next_school_day", limit=None)) + "school_day_start = 09:15:00\n"
    (loaded,) = parse_targets(text).targets
    assert loaded.school_day_start == dt.time(9, 15)
    assert loaded.limit_text == "before 09:15 on the next school day"


# Deadlines --------------------------------------------------------------------------------


def make(unit: Unit, limit: float | None) -> Target:
    return Target("X", "domestic_abuse", "event_to_shared", unit, limit, "d", "s")


def test_an_hours_target_is_elapsed_time_and_met_at_the_deadline() -> None:
    day = make(Unit.HOURS, 24)
    friday = uk(2025, 1, 10, 16)
    assert day.deadline(friday, "england") == uk(2025, 1, 11, 16)  # weekends count
    assert day.met(friday, uk(2025, 1, 11, 16), "england")
    assert not day.met(friday, uk(2025, 1, 11, 16) + dt.timedelta(seconds=1), "england")
    assert day.limit_hours == 24
    assert make(Unit.HOURS, 0.5).deadline(friday, "wales") == uk(2025, 1, 10, 16, 30)


def test_a_working_days_target_skips_weekends_and_bank_holidays() -> None:
    one = make(Unit.WORKING_DAYS, 1)
    friday = uk(2025, 5, 23, 16)
    assert one.deadline(friday, "england") == uk(2025, 5, 27, 16)
    assert one.met(friday, uk(2025, 5, 27, 15), "wales")
    assert not one.met(friday, uk(2025, 5, 27, 17), "wales")
    assert one.limit_hours is None


def test_a_next_school_day_target() -> None:
    encompass = make(Unit.NEXT_SCHOOL_DAY, None)
    friday_night = uk(2025, 1, 10, 22)
    assert encompass.deadline(friday_night, "england") == uk(2025, 1, 13, 8, 30)
    assert encompass.met(friday_night, uk(2025, 1, 13, 8, 0), "england")
    assert not encompass.met(friday_night, uk(2025, 1, 13, 9, 0), "england")


def test_limit_texts() -> None:
    assert make(Unit.HOURS, 1).limit_text == "1 hour"
    assert make(Unit.HOURS, 72).limit_text == "72 hours"
    assert make(Unit.HOURS, 0.5).limit_text == "0.5 hours"
    assert make(Unit.WORKING_DAYS, 1).limit_text == "1 working day"
    assert make(Unit.WORKING_DAYS, 15).limit_text == "15 working days"
    assert make(Unit.NEXT_SCHOOL_DAY, None).limit_text == "before 08:30 on the next school day"


def test_deadlines_refuse_naive_times_and_unknown_nations() -> None:
    day = make(Unit.HOURS, 24)
    naive = dt.datetime(2025, 1, 10, 16)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive"):
        day.deadline(naive, "england")
    with pytest.raises(ValueError, match="naive"):
        day.met(uk(2025, 1, 10), naive, "england")
    with pytest.raises(ValueError, match="unknown nation"):
        day.deadline(uk(2025, 1, 10), "scotland")
