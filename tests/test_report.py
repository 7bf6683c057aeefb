"""The sharing report: GraphQL for an inspectorate and for a council's own figures, the CLI in
three formats (logged as a disclosure), and PostgreSQL's SQL path against the Python path."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hub.access.agreement import default_path, file_version
from hub.access.models import Role
from hub.audit.models import AuditEvent
from hub.audit.service import pseudonym
from hub.cli import app
from hub.db import Database
from hub.settings import Settings
from hub.timeliness import extract
from hub.timeliness.calendar import LONDON
from hub.timeliness.report_data import ReportScope
from tests.conftest import LiveServer, cli_settings, is_postgres, unique
from tests.factories import COUNCIL, FORCE, OTHER_COUNCIL, REPORT_INCIDENT, child, incident, iso

REPORT = """query($from: Date!, $to: Date!, $council: String) {
  sharingReport(from: $from, to: $to, council: $council) {
    force council breachCount
    byCouncil { council targetId count breached }
    breaches(first: 1000) { targetId council recordId child delayHours }
    batching { force score } charts { chart svg } } }"""


def _late_incident(reference: str, council: str, hours: float = 40) -> dict[str, Any]:
    occurred = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=hours)
    return incident(
        reference,
        council=council,
        occurredAt=iso(occurred),
        recordedAt=iso(occurred + dt.timedelta(hours=1)),
        children=[{"child": child(f"{reference}-C", council=council), "present": True}],
    )


@pytest.fixture(scope="module")
async def pushed(live_server: LiveServer) -> dict[str, Any]:
    """Two late incidents, one per council; returns ids and children."""
    import httpx  # noqa: PLC0415

    found: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        for council in (COUNCIL, OTHER_COUNCIL):
            token = live_server.token(Role.POLICE_OFFICER, FORCE)
            response = await http.post(
                live_server.graphql_url,
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "query": REPORT_INCIDENT,
                    "variables": {"input": _late_incident(unique("RP"), council)},
                },
            )
            body = response.json()
            assert "errors" not in body, body
            found[council] = body["data"]["reportIncident"]
    return found


def _period() -> dict[str, str]:
    today = dt.datetime.now(dt.UTC).date()
    return {"from": (today - dt.timedelta(days=7)).isoformat(), "to": today.isoformat()}


async def test_the_inspectorate_sees_breaches_with_children_pseudonymised(
    as_role: Any, pushed: dict[str, Any], live_server: LiveServer
) -> None:
    response = await as_role(Role.AUDITOR, "OFSTED").post(REPORT, _period())
    body = response.json()
    assert "errors" not in body, body
    report = body["data"]["sharingReport"]
    ours = {pushed[COUNCIL]["id"], pushed[OTHER_COUNCIL]["id"]}
    breaches = [b for b in report["breaches"] if b["recordId"] in ours and b["targetId"] == "T9"]
    assert {b["council"] for b in breaches} == {COUNCIL, OTHER_COUNCIL}
    key = live_server.settings.pseudonym_key.get_secret_value()
    children = {c["child"]["id"] for p in pushed.values() for c in p["children"]}
    assert {b["child"] for b in breaches} == {pseudonym(c, key=key) for c in children}
    for child_id in children:
        assert child_id not in response.text, "a child's id reached the inspectorate"
    assert all(b["delayHours"] >= 40 for b in breaches)
    assert {c["chart"] for c in report["charts"]} >= {"delay-by-force", "batching-score"}
    assert all(c["svg"].startswith("<svg data-chart=") for c in report["charts"])


async def test_a_report_read_through_graphql_is_a_disclosure(
    as_role: Any, pushed: dict[str, Any], db: Database
) -> None:
    period = _period()
    body = await as_role(Role.AUDITOR, "OFSTED")(REPORT, period)
    assert "errors" not in body, body
    async with db.transaction(write=False) as session:
        latest = (
            await session.execute(
                sa.select(AuditEvent)
                .where(
                    AuditEvent.organisation_code == "OFSTED", AuditEvent.operation == "disclosure"
                )
                .order_by(AuditEvent.seq.desc())  # type: ignore[attr-defined]
                .limit(1)
            )
        ).scalar_one()
    assert (latest.operation_kind, latest.outcome, latest.role) == ("query", "served", "auditor")
    detail = latest.detail_data or {}
    assert (detail["report"], detail["format"]) == ("sharing report", "graphql")
    assert (detail["period_from"], detail["period_to"]) == (period["from"], period["to"])
    assert detail["breaches"] == body["data"]["sharingReport"]["breachCount"]


async def test_a_council_sees_only_its_own_figures(as_role: Any, pushed: dict[str, Any]) -> None:
    council = as_role(Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    council.headers["Hub-Purpose"] = "sharing_timeliness"
    body = await council(REPORT, _period())
    assert "errors" not in body, body
    report = body["data"]["sharingReport"]
    assert report["council"] == COUNCIL
    assert {row["council"] for row in report["byCouncil"]} == {COUNCIL}
    assert {b["council"] for b in report["breaches"]} == {COUNCIL}
    assert pushed[OTHER_COUNCIL]["id"] not in {b["recordId"] for b in report["breaches"]}
    other = await council(REPORT, {**_period(), "council": OTHER_COUNCIL})
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    school = await as_role(Role.SCHOOL_DSL, "TEST-SCHOOL-A")(REPORT, _period())
    assert school["errors"][0]["extensions"]["code"] == "FORBIDDEN_FIELD"


runner = CliRunner()


@pytest.fixture
def cli_env(database_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with cli_settings(monkeypatch, database_url, data_dir):
        yield database_url


def _disclosures(url: str) -> list[AuditEvent]:
    async def read() -> list[AuditEvent]:
        db = Database(url)
        try:
            async with db.transaction(write=False) as session:
                rows = await session.execute(
                    sa.select(AuditEvent)
                    .where(AuditEvent.operation_name == "sharing report")
                    .order_by(AuditEvent.seq)  # type: ignore[arg-type]
                )
                return list(rows.scalars())
        finally:
            await db.dispose()

    return asyncio.run(read())


@pytest.mark.usefixtures("pushed")
def test_the_report_command_in_three_formats_is_logged(cli_env: str, tmp_path: Path) -> None:
    period = _period()
    before = len(_disclosures(cli_env))
    outputs = {}
    for report_format in ("md", "html", "csv"):
        target = tmp_path / f"report.{report_format}"
        result = runner.invoke(
            app,
            [
                "report",
                "--from",
                period["from"],
                "--to",
                period["to"],
                "--council",
                COUNCIL,
                "--format",
                report_format,
                "--output",
                str(target),
                "--user",
                "inspector-7",
            ],
        )
        assert result.exit_code == 0, result.output
        outputs[report_format] = target.read_text()
    assert outputs["md"].startswith("# Sharing delays")
    assert "| T9 |" in outputs["md"]
    shipped = file_version(default_path())
    assert f"agreement version {shipped}" in outputs["md"], "the report names its agreement"
    html = outputs["html"]
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html
    assert 'data-chart="delay-by-force"' in html
    rows = list(csv.DictReader(io.StringIO(outputs["csv"])))
    assert {row["council_code"] for row in rows if row["section"] == "breach"} == {COUNCIL}
    assert any(row["section"] == "stats" and row["target_id"] == "T9" for row in rows)
    logged = _disclosures(cli_env)[before:]
    assert [e.operation for e in logged] == ["disclosure"] * 3
    assert {e.operation_kind for e in logged} == {"export"}
    assert {e.user for e in logged} == {"inspector-7"}
    details = [e.detail_data or {} for e in logged]
    assert [d["format"] for d in details] == ["md", "html", "csv"]
    assert {d["council"] for d in details} == {COUNCIL}
    bad = runner.invoke(app, ["report", "--from", "2026-02-01", "--to", "2026-01-01"])
    assert bad.exit_code == 2


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 relative (SQL and Python round the last bit differently)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9)
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        return type(a) is type(b) and all(
            _close(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _ordered(breaches: tuple[Any, ...]) -> list[Any]:
    """Breaches of equal delay (one record shared with two councils, a meeting's invitations to
    two forces, or about two children) may come in either order: sorted by everything but the
    figures each path computes."""
    return sorted(
        breaches,
        key=lambda b: (
            b.target_id,
            b.record_id,
            b.force_code,
            b.council_code,
            b.stage,
            b.child or "",
            b.start,
        ),
    )


def _differing(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[list[Any], list[Any]]:
    """The breaches only one side lists (or lists with other figures), for the failure's text."""
    return [x for x in a if not any(_close(x, y) for y in b)], [
        y for y in b if not any(_close(x, y) for x in a)
    ]


def _last_days(days: int, settings: Settings | None = None, **more: Any) -> dict[str, Any]:
    """`extract.report`'s arguments for the last `days` days up to today, judged now."""
    today = dt.datetime.now(dt.UTC).date()
    return {
        "targets": extract.targets_for(settings or Settings()),
        "period_from": today - dt.timedelta(days=days),
        "period_to": today,
        "as_of": dt.datetime.now(dt.UTC),
        "pseudonym_key": "test-key",
        **more,
    }


@pytest.mark.skipif(not is_postgres(), reason="the SQL path is PostgreSQL's")
@pytest.mark.usefixtures("pushed")
async def test_the_sql_path_gives_the_python_paths_figures(database_url: str) -> None:
    db = Database(database_url)
    common = _last_days(30)
    try:
        for scope in (
            ReportScope(),
            ReportScope(council_code=COUNCIL),
            ReportScope(force_code=FORCE, kind="domestic_abuse"),
        ):
            python = await extract.report(db, scope=scope, use_sql=False, **common)
            sql = await extract.report(db, scope=scope, use_sql=True, **common)
            assert python.by_force, "the database holds records for the comparison"
            for name in ("by_force", "by_council", "by_kind", "by_month"):
                assert _close(getattr(python, name), getattr(sql, name)), (scope, name)
            assert _close(_ordered(python.breaches), _ordered(sql.breaches)), (
                scope,
                _differing(python.breaches, sql.breaches),
            )
            assert python.bursts == sql.bursts
            assert python.batching_scores == sql.batching_scores
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
async def demo_database(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settings]:
    """A database of its own holding the demo, for the module's comparisons on it."""
    from hub import demo  # noqa: PLC0415
    from tests.conftest import scratch_database  # noqa: PLC0415

    directory = tmp_path_factory.mktemp("demo_report")
    async with scratch_database(directory, "hub_breaches") as url:
        settings = Settings(database_url=url, data_dir=directory)
        await demo.load(settings, base_url="http://127.0.0.1:9")
        yield settings


@pytest.mark.skipif(not is_postgres(), reason="the SQL path is PostgreSQL's")
async def test_on_the_demo_the_sql_path_lists_the_python_paths_breaches_and_bursts(
    demo_database: Settings,
) -> None:
    """The SQL path unfolds only the rows whose worst breach reaches the last one listed: with
    the demo's late forces (records breaching two targets at once among them), any listing
    length still gives the Python path's longest breaches, and the same count. Its weekly
    uploads (many records shared within seconds) give the same bursts both ways."""
    settings = demo_database
    db = Database(settings.database_url)
    common = _last_days(190, settings, scope=ReportScope())
    try:
        full = await extract.report(db, use_sql=False, **common)
        twice = {b.record_id for b in full.breaches if b.target_id == "T8"} & {
            b.record_id for b in full.breaches if b.target_id == "T9"
        }
        assert twice, "some records breach two targets: their rows unfold into two"
        for limit in (1, 2, 7, len(full.breaches) // 2, len(full.breaches) + 1):
            sql = await extract.report(db, use_sql=True, breach_limit=limit, **common)
            expected = full.breaches[:limit]
            assert [round(b.delay_hours, 6) for b in sql.breaches] == [
                round(b.delay_hours, 6) for b in expected
            ], limit
            assert _close(_ordered(sql.breaches), _ordered(expected)), limit
            assert sql.breach_count == full.breach_count
        assert full.bursts, "the demo's batching force uploads in bursts"
        assert sql.bursts == full.bursts
        assert sql.batching_scores == full.batching_scores
        # The parts give the same report one after another on one connection.
        alone = await extract.report(db, use_sql=True, connections=1, **common)
        together = await extract.report(db, use_sql=True, connections=2, **common)
        for name in ("by_force", "by_council", "by_kind", "by_month", "breaches", "bursts"):
            assert getattr(alone, name) == getattr(together, name), name
    finally:
        await db.dispose()


@pytest.mark.skipif(not is_postgres(), reason="the SQL path is PostgreSQL's")
async def test_stages_begun_before_the_period_are_judged_alike_both_ways(
    demo_database: Settings,
) -> None:
    """A period that starts on the day of a conference, after its strategy discussion and its
    invitations: the conference is the period's, and its stages begun before the period (the
    discussion to the conference, the invitations to their answers) are judged against their
    working-day deadlines as the Python path judges them. The SQL path's calendar once began
    the day before the period, and read a deadline for an earlier start out of the next
    calendar's days: breaches the Python path did not find (one CI run on the demo's 190 days,
    where which records fall at the period's edge changes with the hour)."""
    db = Database(demo_database.database_url)
    try:
        async with db.engine.connect() as connection:
            found = await connection.execute(
                sa.text(
                    "SELECT m.scheduled_at FROM meeting m "
                    "JOIN meeting d ON d.id = m.strategy_discussion_id "
                    "JOIN meeting_invitation i ON i.meeting_id = m.id "
                    "WHERE coalesce(d.held_at, d.scheduled_at) < m.scheduled_at - interval '5 days'"
                    " AND i.invited_at < m.scheduled_at - interval '2 days'"
                    " AND m.held_at IS NOT NULL ORDER BY m.scheduled_at LIMIT 1"
                )
            )
            conference = found.scalar_one()
        common = _last_days(190, demo_database, scope=ReportScope())
        common["period_from"] = conference.astimezone(LONDON).date()
        python = await extract.report(db, use_sql=False, **common)
        sql = await extract.report(db, use_sql=True, **common)
        assert any(b.stage == "discussion_to_conference" for b in python.breaches) or any(
            s.stage == "discussion_to_conference" and s.count for s in python.by_kind
        ), "the conference's discussion is measured"
        for name in ("by_force", "by_council", "by_kind", "by_month"):
            assert _close(getattr(python, name), getattr(sql, name)), name
        assert _close(_ordered(python.breaches), _ordered(sql.breaches)), _differing(
            python.breaches, sql.breaches
        )
        assert sql.breach_count == python.breach_count
    finally:
        await db.dispose()


@pytest.mark.skipif(not is_postgres(), reason="the SQL path is PostgreSQL's")
@pytest.mark.usefixtures("pushed")
async def test_a_failing_part_fails_the_report_and_leaves_no_connection_busy(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.timeliness import report_sql  # noqa: PLC0415

    build = report_sql.build

    def broken(*args: Any, **kwargs: Any) -> Any:
        parts, params, cells = build(*args, **kwargs)
        return [*parts[:-1], "SELECT 1 / 0"], params, cells

    db = Database(database_url)
    common = _last_days(30, scope=ReportScope(), use_sql=True, connections=2)
    try:
        monkeypatch.setattr(extract, "build", broken)
        with pytest.raises(sa.exc.DBAPIError, match="division by zero"):
            await extract.report(db, **common)
        assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        monkeypatch.setattr(extract, "build", build)
        data = await extract.report(db, **common)
        assert data.by_force, "the next report runs on the same pool"
    finally:
        await db.dispose()


@pytest.mark.skipif(not is_postgres(), reason="bench-report measures PostgreSQL's SQL path")
async def test_the_report_benchmark_runs_tiny() -> None:
    from hub.partnership.bench import Volumes  # noqa: PLC0415
    from hub.timeliness import bench  # noqa: PLC0415
    from hub.timeliness.report_sql import PARTS  # noqa: PLC0415
    from tests.conftest import POSTGRES_URL  # noqa: PLC0415

    volumes = Volumes(
        strategy_discussions=60,
        initial_conferences=20,
        review_conferences=20,
        joint_visits=30,
        protections=20,
    )
    figures = await bench.run(
        database_url=POSTGRES_URL, incidents=400, episodes=60, events=300, volumes=volumes
    )
    lines = figures.lines()
    assert figures.national_stages > figures.council_stages > 0
    assert figures.national_seconds > 0
    assert len(figures.national_runs) == bench.NATIONAL_RUNS
    assert min(figures.national_runs) <= figures.national_seconds <= max(figures.national_runs)
    assert any("national year report" in line and "the median of 3 runs" in line for line in lines)
    assert figures.breaches > 0
    assert list(figures.parts) == list(PARTS)
    assert all(seconds > 0 for seconds in figures.parts.values())
    assert any(line.startswith("national parts") for line in lines)
    invitations, requests, protections, _ = figures.counted
    assert 0 < invitations <= 100  # the held ones of those the period holds
    assert 0 < requests <= 30
    assert 0 < protections <= 20
    assert any(line.startswith("partnership counted nationally") for line in lines)


@pytest.mark.skipif(not is_postgres(), reason="bench-report measures PostgreSQL's SQL path")
async def test_the_report_benchmark_reuses_a_kept_database() -> None:
    """`--keep NAME` loads once; a second run measures the same records without loading more."""
    from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415

    from hub.partnership.bench import Volumes  # noqa: PLC0415
    from hub.timeliness import bench  # noqa: PLC0415
    from tests.conftest import POSTGRES_URL  # noqa: PLC0415

    name = unique("hub_bench_kept").lower().replace("-", "_")
    try:
        first = await bench.run(
            database_url=POSTGRES_URL,
            incidents=300,
            episodes=40,
            events=0,
            keep=name,
            volumes=Volumes(30, 10, 10, 10, 10),
        )
        # Asked for other sizes, it still measures what it loaded the first time.
        again = await bench.run(
            database_url=POSTGRES_URL, incidents=7, episodes=0, events=0, keep=name
        )
        assert again.national_stages == first.national_stages > 0
        assert again.council_stages == first.council_stages
        assert again.counted == first.counted
    finally:
        admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        async with admin.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def _london(text: str) -> dt.datetime:
    from hub.timeliness.calendar import LONDON  # noqa: PLC0415

    return dt.datetime.fromisoformat(text).replace(tzinfo=LONDON).astimezone(dt.UTC)


# (event, shared, acknowledged) in UK time: bank holidays, weekends, midnight, the clocks changing.
_EDGES = (
    ("2026-05-01T16:00", "2026-05-05T08:29", "2026-05-06T08:29"),  # Early May bank holiday
    ("2026-05-01T16:00", "2026-05-05T08:31", "2026-05-06T08:31"),
    ("2025-12-24T17:00", "2025-12-29T08:00", "2025-12-30T07:59"),  # Christmas, the weekend
    ("2026-06-05T00:00", "2026-06-05T00:00", "2026-06-06T00:00"),  # midnight on a Friday
    ("2026-06-05T00:00", "2026-06-05T00:00", "2026-06-08T00:01"),
    ("2026-03-28T23:30", "2026-03-30T08:30", "2026-03-31T08:30"),  # clocks go forward
    ("2026-10-24T12:00", "2026-10-26T08:30", "2026-10-27T08:31"),  # clocks go back
    ("2026-02-14T10:00", "2026-02-16T08:29", "2026-02-16T09:00"),  # a Saturday's incident
)


@pytest.mark.skipif(not is_postgres(), reason="the SQL path is PostgreSQL's")
async def test_sql_deadlines_follow_the_calendar_in_england_and_wales(tmp_path: Path) -> None:
    """Working days and school days computed in SQL agree with the Python calendar."""
    from hub.children.service import ChildDetails  # noqa: PLC0415
    from hub.incidents import service as incidents  # noqa: PLC0415
    from hub.incidents.models import IncidentType  # noqa: PLC0415
    from hub.incidents.service import IncidentReport, InvolvedChild  # noqa: PLC0415
    from hub.timeliness.models import RecordReceipt  # noqa: PLC0415
    from tests.conftest import scratch_database  # noqa: PLC0415

    places = (("WEST_MIDLANDS", COUNCIL), ("SOUTH_WALES", "W06000015"))
    async with scratch_database(tmp_path, "hub_edges") as url:
        db = Database(url)
        try:
            async with db.transaction(write=True) as session:
                for number, (event, shared, acknowledged) in enumerate(_EDGES):
                    for force, council in places:
                        row, _ = await incidents.report(
                            session,
                            force_code=force,
                            client_id="test",
                            incident=IncidentReport(
                                police_reference=f"EDGE-{number}",
                                type=IncidentType.DOMESTIC_ABUSE,
                                occurred_at=_london(event),
                                recorded_at=_london(event),
                                location_council=council,
                                children=(
                                    InvolvedChild(
                                        child=ChildDetails(
                                            police_reference=f"EDGE-C{number}",
                                            given_name="Alex",
                                            family_name="Example",
                                            date_of_birth=dt.date(2015, 1, 1),
                                            responsible_council=council,
                                        )
                                    ),
                                ),
                            ),
                            shared_at=_london(shared),
                        )
                        session.add(
                            RecordReceipt(
                                record_type="Incident",
                                record_id=row.id,
                                organisation_code=council,
                                first_seen_at=_london(shared),
                                acknowledged_at=_london(acknowledged),
                            )
                        )
            common: dict[str, Any] = {
                "targets": extract.targets_for(Settings()),
                "period_from": dt.date(2025, 12, 1),
                "period_to": dt.date(2026, 11, 1),
                "scope": ReportScope(),
                "as_of": dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
                "pseudonym_key": "k",
            }
            python = await extract.report(db, use_sql=False, **common)
            sql = await extract.report(db, use_sql=True, **common)
        finally:
            await db.dispose()
    assert _close(_ordered(python.breaches), _ordered(sql.breaches))
    assert _close(python.by_council, sql.by_council)
    judged = {(r.group.council_code, r.target_id): (r.within, r.breached) for r in sql.by_council}
    # By hand: T8 is missed only by the 08:31 share after the bank holiday (the Saturday's
    # incident shared on Monday at 08:29 is in time). DA-ACK (one working day from the share) is
    # missed by the Monday 00:01 acknowledgement of a Friday-midnight share (due Saturday 00:00)
    # and by the 08:31 one after the clocks went back; the others end at or before it.
    for council in (COUNCIL, "W06000015"):
        assert judged[council, "T8"] == (len(_EDGES) - 1, 1)
        assert judged[council, "DA-ACK"] == (len(_EDGES) - 2, 2)


def test_numpy_ranks_give_the_median_and_nearest_rank_90th_percentile() -> None:
    """One sort, then runs per group: three ranks that agree with the Python statistics for any
    n (group n holds n delays, in no order), and None where a group has no delay."""
    import statistics  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from hub.timeliness import percentiles  # noqa: PLC0415
    from hub.timeliness.stats import nearest_rank  # noqa: PLC0415

    sizes = range(1, 401)
    codes = [f"C{n}" for n in sizes]
    # The database's hashes of the values, as the stages part writes them (any distinct ints).
    hashes = {code: -7919 * n for n, code in enumerate(codes, start=1)}
    hashes |= {"incident": 17, "2026-01": 5}
    council = np.repeat([hashes[code] for code in codes], list(sizes))
    first = np.concatenate([np.arange(1, n + 1) * 7 % 1009 for n in sizes])
    nothing = np.full(council.size, percentiles.NO_DELAY)
    group_keys = [
        np.full(council.size, hashes["C1"]),
        council,
        np.full(council.size, 17),
        np.full(council.size, 5),
    ]
    delays = [first, *([nothing] * (percentiles.STAGE_COUNT - 1))]
    keys = percentiles.Keys(codes=codes, kinds=["incident"], months=["2026-01"], hashes=hashes)
    # Stage 0 counts in population 0 for kind 1; stage 1 in population 1, which no row reaches.
    table = [[-1, 0], [-1, 1], *([[-1, -1]] * (percentiles.STAGE_COUNT - 2))]

    def ranked(hashed: list[np.ndarray]) -> dict[str, dict[str, list[float | None]]]:
        positions = [
            keys.positions(name, key)
            for name, key in zip(percentiles.GROUPINGS, hashed, strict=True)
        ]
        return percentiles.ranks(positions, delays, keys=keys, population_of=table, populations=2)

    found = ranked(group_keys)

    assert list(found["council"]) == [f"C{n}" for n in sizes]
    for n in sizes:
        low, high, p90, *rest = found["council"][f"C{n}"]
        values = sorted(float(v * 7 % 1009) for v in range(1, n + 1))
        assert (low + high) / 2 == statistics.median(values), n  # type: ignore[operator]
        assert p90 == nearest_rank(values, 90), n
        assert rest == [None, None, None]
    everything = sorted(float(v) for v in first)
    low, high, p90, *_ = found["kind"]["incident"]
    assert (low + high) / 2 == statistics.median(everything)  # type: ignore[operator]
    assert p90 == nearest_rank(everything, 90)
    assert list(found["force"]) == ["C1"]

    # A hash no listed value has: the report fails rather than drop the record's delays.
    group_keys[1] = council.copy()
    group_keys[1][5] = 123
    with pytest.raises(percentiles.BadDelays):
        ranked(group_keys)


@pytest.mark.parametrize("spread", [0, 1, 1009, 2**45, 2**61])
def test_numpy_runs_hold_each_runs_delays_in_order_however_far_apart(spread: int) -> None:
    """The ranks read delays laid out in sorted runs: one sort of a key packing the run above
    the delay while both fit in 63 bits (a year's delays in microseconds do), ordered by both
    keys when they do not (delays far apart, negative ones too)."""
    import numpy as np  # noqa: PLC0415

    from hub.timeliness import percentiles  # noqa: PLC0415

    rng = np.random.default_rng(spread)
    runs = 300
    run = rng.integers(0, runs, 5000)
    values = rng.integers(-spread // 2, spread // 2 + 1, 5000)
    expected = np.concatenate([np.sort(values[run == r]) for r in range(runs)])
    laid_out = percentiles._in_runs(values, run, runs=runs)
    assert laid_out.tolist() == expected.tolist()


@pytest.mark.parametrize("batch", [1 << 20, 1, 50, 97])
def test_numpy_reads_only_the_stages_parts_binary_rows(
    batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.timeliness import judged  # noqa: PLC0415
    from hub.timeliness.percentiles import BadDelays  # noqa: PLC0415

    # The chunks are joined into batches of about this many bytes (small ones: many batches).
    monkeypatch.setattr(judged, "_BATCH_BYTES", batch)

    header = b"PGCOPY\n\xff\r\n\x00" + bytes(4) + bytes(4)
    times = (7, judged.MISSING, -2, 0, 1, 2**40, 3)
    row = (
        (14).to_bytes(2, "big")
        + (6).to_bytes(4, "big")
        + (12).to_bytes(4, "big")
        + (3).to_bytes(2, "big")
        + b"".join((4).to_bytes(4, "big") + k.to_bytes(4, "big") for k in (3, 5, 1, 2, 0b101))
        + b"".join((8).to_bytes(4, "big") + t.to_bytes(8, "big", signed=True) for t in times)
        + (8).to_bytes(4, "big")
        + (99).to_bytes(8, "big")
    )
    facts = judged.read(header + row + row + b"\xff\xff", calendar_targets=1)
    assert [int(k[1]) for k in facts.keys] == [3, 5, 1, 2]
    assert int(facts.applies[0]) == 0b101
    assert [int(facts.readings[name][0]) for name in judged.READINGS] == list(times)
    assert int(facts.deadlines[0][1]) == 99
    assert facts.tids_of([1, 0]) == ["(12,3)", "(12,3)"]
    with pytest.raises(BadDelays):
        judged.read(header + row[:-1] + b"\xff\xff", calendar_targets=1)  # a row cut short
    with pytest.raises(BadDelays):
        judged.read(header + row + b"\xff\xff", calendar_targets=0)  # another layout
    with pytest.raises(BadDelays):
        judged.read(b"not a copy stream", calendar_targets=0)
    # As it arrives: in chunks cut anywhere, header and rows and trailer alike, and in slices.
    stream = header + row + row + b"\xff\xff"
    for cut in range(1, len(stream)):
        for second in (cut, min(cut + 7, len(stream))):
            chunks = [stream[:cut], stream[cut:second], stream[second:]]
            split = judged.read_all([chunks, [header, row + b"\xff\xff"]], calendar_targets=1)
            assert [int(k[1]) for k in split.keys] == [3, 5, 1, 2]
            assert split.tids_of([0, 1, 2]) == ["(12,3)"] * 3
            assert [int(split.readings[name][2]) for name in judged.READINGS] == list(times)
            assert [int(d) for d in split.deadlines[0]] == [99, 99, 99]
    with pytest.raises(BadDelays):
        judged.read_all([[stream[:9], stream[9:-1]]], calendar_targets=1)  # no trailer


@pytest.mark.skipif(not is_postgres(), reason="the SQL path is PostgreSQL's")
async def test_sql_burst_candidates_hold_records_shared_at_one_instant(tmp_path: Path) -> None:
    """Records an upload shares at the very same instant (equal times, in any row order) are
    found as the Python detector finds them: the SQL pre-filter decides density from the first
    of equal times, and a miss there would drop a burst."""
    from hub.timeliness.batching import SharedRecord, detect_batching  # noqa: PLC0415
    from hub.timeliness.facts import StageFact  # noqa: PLC0415
    from tests.conftest import scratch_database  # noqa: PLC0415

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    upload = now - dt.timedelta(days=3)
    groups = [
        (upload, 6),  # six at one instant: a burst
        (upload + dt.timedelta(hours=5), 4),  # four at one instant: too few
        (upload + dt.timedelta(hours=9), 3),  # three at one instant, two more within the window
        (upload + dt.timedelta(hours=9, minutes=6), 2),
    ]
    shared: list[SharedRecord] = []
    for shared_at, count in groups:
        for n in range(count):
            event_at = shared_at - dt.timedelta(days=2 + n)  # old, and days apart
            shared.append(
                SharedRecord(FORCE, COUNCIL, "incident", str(uuid.uuid4()), event_at, shared_at)
            )
    expected = detect_batching(shared)
    assert [b.count for b in expected.bursts] == [6, 5], "the data has the bursts it means to"

    async with scratch_database(tmp_path, "hub_ties") as url:
        db = Database(url)
        try:
            async with db.transaction(write=True) as session:
                for record in shared:
                    london = record.event_at.astimezone(LONDON)
                    session.add(
                        StageFact(
                            record_type="Incident",
                            record_id=record.record_id,
                            council_code=COUNCIL,
                            subject_id=record.record_id,
                            kind="incident",
                            force_code=FORCE,
                            month=london.strftime("%Y-%m"),
                            event_at=record.event_at,
                            recorded_at=record.event_at,
                            shared_at=record.shared_at,
                            share_stages=True,
                            receipt_stages=True,
                            first_council=True,
                            event_local=london.replace(tzinfo=None),
                            recorded_local=london.replace(tzinfo=None),
                            shared_local=record.shared_at.astimezone(LONDON).replace(tzinfo=None),
                        )
                    )
            data = await extract.report(db, **_last_days(30, scope=ReportScope(), use_sql=True))
        finally:
            await db.dispose()
    assert data.bursts == expected.bursts
    assert data.batching_scores == expected.scores


_TWO_TARGETS = """
schema = 1
[[targets]]
id = "SHARE"
kind = "missing_episode"
stage = "event_to_shared"
unit = "hours"
limit = 1
description = "Shared within the hour."
source = "Synthetic."

[[targets]]
id = "ACK"
kind = "missing_episode"
stage = "shared_to_acknowledged"
unit = "hours"
limit = 4
description = "Acknowledged within four hours."
source = "Synthetic."
"""


def test_numpy_judges_hand_computed_stages_and_keeps_breaches_tied_at_the_limit() -> None:
    """Six missing episodes, by hand: sharing within the hour or late (two tied at 2 hours),
    acknowledgement within four hours, still open past its deadline, or pending."""
    import numpy as np  # noqa: PLC0415

    from hub.timeliness import judged  # noqa: PLC0415
    from hub.timeliness.percentiles import NO_DELAY, Keys  # noqa: PLC0415
    from hub.timeliness.report_sql import STAGE_SQL  # noqa: PLC0415
    from hub.timeliness.targets import KINDS, STAGES, parse_targets  # noqa: PLC0415

    hour = 3_600_000_000
    base = judged.microseconds(dt.datetime(2026, 1, 5, tzinfo=dt.UTC))
    as_of = judged.instant(base + 10 * hour)
    # (event, shared, acknowledged) in hours after base; None: not yet acknowledged.
    episodes = [(0, 0.5, 1.5), (0, 2, 3), (0, 2, 3), (0, 1.5, 2.5), (3.5, 4, None), (6.5, 7, None)]
    size = len(episodes)

    def at(hours: float | None) -> int:
        return judged.MISSING if hours is None else base + round(hours * hour)

    readings = {name: np.full(size, judged.MISSING, dtype=np.int64) for name in judged.READINGS}
    readings["event_at"] = np.array([at(e) for e, _, _ in episodes])
    readings["shared_at"] = np.array([at(s) for _, s, _ in episodes])
    readings["acknowledged_at"] = np.array([at(a) for _, _, a in episodes])
    names = ["F1", "C1", *KINDS, "2026-01"]
    keys = Keys(
        codes=["C1", "F1"],
        kinds=list(KINDS),
        months=["2026-01"],
        hashes={name: 11 * n for n, name in enumerate(names)},
    )
    hashed = [keys.hashes[name] for name in ("F1", "C1", "missing_episode", "2026-01")]
    stage = {name: index for index, name in enumerate(STAGES)}
    applies = sum(1 << stage[s] for s in ("event_to_shared", "shared_to_acknowledged"))
    facts = judged.Facts(
        tids=np.zeros(size, dtype=[("block", ">u4"), ("offset", ">u2")]),
        keys=[np.full(size, value, dtype=np.int64) for value in hashed],
        applies=np.full(size, applies, dtype=np.int64),
        readings=readings,
        deadlines=[],
    )

    def run(limit: int | None) -> judged.Judged:
        return judged.judge(
            facts,
            keys=keys,
            targets=parse_targets(_TWO_TARGETS),
            stages=[(start, end) for start, end, _ in STAGE_SQL.values()],
            as_of=as_of,
            limit=limit,
        )

    every = run(None)
    shared = stage["event_to_shared"]
    assert (
        every.delays[shared].tolist()
        == [hour // 2, 2 * hour, 2 * hour, 3 * hour // 2] + [hour // 2] * 2
    )
    assert every.delays[stage["shared_to_acknowledged"]].tolist() == [hour] * 4 + [NO_DELAY] * 2
    (group,) = every.counts
    assert (group["force_code"], group["council_code"], group["kind"], group["month"]) == (
        "F1",
        "C1",
        "missing_episode",
        "2026-01",
    )
    stats = group["stats"]
    n = len(STAGES)
    assert stats[n] == size
    assert stats[n + 1 + shared] == size  # every sharing ended
    assert stats[n + 1 + stage["shared_to_acknowledged"]] == 4
    assert stats[2 * n + 1 + shared] == 2 * hour  # the longest
    assert stats[3 * n + 1 :] == [3, 3, 4, 1]  # SHARE within, breached; ACK within, breached
    longest = [(c.row, c.target, c.delay_us, c.end is None) for c in every.candidates]
    assert sorted(longest, key=lambda c: (-c[2], c[0])) == [
        (4, 1, 6 * hour, True),  # acknowledgement open 6 hours after sharing, deadline 4
        (1, 0, 2 * hour, False),
        (2, 0, 2 * hour, False),
        (3, 0, 3 * hour // 2, False),
    ]
    open_breach = next(c for c in every.candidates if c.target == 1)
    assert open_breach.deadline == judged.instant(at(8))
    # The two longest: both 2-hour breaches tie for second place, and both are kept.
    assert sorted((c.row, c.target) for c in run(2).candidates) == [(1, 0), (2, 0), (4, 1)]
    assert run(0).candidates == []
