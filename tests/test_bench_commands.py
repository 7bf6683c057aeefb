"""Every bench command, run as a newcomer runs it, at a tiny size: figures when every request
succeeded with a whole answer; otherwise the reason, exit status 1, and no rate at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.bench import BenchFailed, Figures
from hub.bench_http import Answer
from hub.bench_listing import LISTED
from hub.bench_read import CpuSnapshot
from hub.timeliness.bench import _check_answers
from tests.conftest import POSTGRES_URL, is_postgres

ROOT = Path(__file__).resolve().parents[1]


def _bench(*arguments: str) -> subprocess.CompletedProcess[str]:
    """The command run as a newcomer runs it, with a temporary directory of its own, which it
    must leave as it found it, whether it measured or refused: a run's scratch directories
    hold its hubs' signing keys."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    with tempfile.TemporaryDirectory(prefix="bench-tmp-") as scratch:
        run = subprocess.run(  # noqa: S603 - our own CLI, with arguments from this file
            [sys.executable, "-m", "hub", *arguments],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
            env={**environment, "TMPDIR": scratch},
            check=False,
        )
        left = sorted(path.name for path in Path(scratch).iterdir())
    assert not left, f"{arguments[0]} left {left} in its temporary directory"
    return run


def _database(tmp_path: Path, name: str) -> str:
    return POSTGRES_URL if is_postgres() else f"sqlite+aiosqlite:///{tmp_path / name}"


def _assert_no_rate(run: subprocess.CompletedProcess[str]) -> None:
    assert run.returncode == 1, run.stdout + run.stderr
    assert "bench failed:" in run.stderr
    assert "/s" not in run.stdout
    assert "median" not in run.stdout
    assert "Traceback" not in run.stderr


def test_bench_prints_rates_when_every_request_succeeded(tmp_path: Path) -> None:
    run = _bench(
        "bench",
        "--database-url",
        _database(tmp_path, "bench.db"),
        "--pushes",
        "24",
        "--queries",
        "8",
        "--concurrency",
        "2",
        "--page-size",
        "5",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines() if line}
    assert "errors 0" in lines["pushes"]
    assert "errors 0" in lines["queries"]
    assert "/s" in lines["queries"]


def test_bench_refuses_to_rate_short_answers(tmp_path: Path) -> None:
    # 6 incidents pushed, pages of 20 asked for: every query comes back short.
    run = _bench(
        "bench",
        "--database-url",
        _database(tmp_path, "short.db"),
        "--pushes",
        "6",
        "--queries",
        "4",
        "--concurrency",
        "2",
        "--page-size",
        "20",
    )
    _assert_no_rate(run)
    assert "4 of 4 queries failed" in run.stderr
    assert "records where" in run.stderr


def test_bench_costs_prints_ratios_or_refuses(tmp_path: Path) -> None:
    good = _bench(
        "bench-costs",
        "--database-url",
        _database(tmp_path, "costs.db"),
        "--records",
        "6",
        "--repeats",
        "4",
        "--page-size",
        "5",
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert "audit cost" in good.stdout
    short = _bench(
        "bench-costs",
        "--database-url",
        _database(tmp_path, "costs-short.db"),
        "--records",
        "3",
        "--repeats",
        "2",
        "--page-size",
        "5",
    )
    _assert_no_rate(short)


def test_bench_read_compares_with_the_baseline_or_refuses(tmp_path: Path) -> None:
    tiny = ("--turns", "1", "--block", "4", "--page-size", "5")
    good = _bench("bench-read", "--database-url", _database(tmp_path, "read.db"), *tiny)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "page rate new/baseline at 8 in flight" in good.stdout
    assert "page-to-floor (new) at 1 in flight" in good.stdout
    assert "page p50 at 1 in flight: baseline" in good.stdout
    assert "ids-to-floor" in good.stdout
    assert any(line.startswith("new      ids   8 in flight") for line in good.stdout.splitlines())
    assert "cpu/request: hub" in good.stdout
    # 3 incidents seeded, pages of 5 asked for: the first page comes back short.
    short = _bench(
        "bench-read", "--database-url", _database(tmp_path, "short.db"), *tiny, "--records", "3"
    )
    _assert_no_rate(short)
    assert "3 records where 5 were asked for" in short.stderr
    # A council's missing episodes, seeded by the force's pushes of them, paged alike.
    missing = _bench(
        "bench-read",
        "--database-url",
        _database(tmp_path, "missing.db"),
        *tiny,
        "--list",
        "missing-episodes",
    )
    assert missing.returncode == 0, missing.stdout + missing.stderr
    assert missing.stdout.startswith("council page of 5 missing episodes"), missing.stdout
    assert "page-to-floor (new) at 8 in flight" in missing.stdout
    unknown = _bench("bench-read", "--database-url", _database(tmp_path, "x.db"), "--list", "x")
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr  # a usage error, no run
    assert "--list" in unknown.stderr
    assert "incidents, missing-episodes" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_bench_read_gives_a_setting_to_this_codes_hub_only(tmp_path: Path) -> None:
    tiny = ("--turns", "1", "--block", "4", "--page-size", "5", "--baseline", "HEAD")
    url = _database(tmp_path, "settings.db")
    # Pages of 5 asked for, at most 2 allowed: only the hub given the setting refuses them.
    capped = _bench("bench-read", "--database-url", url, *tiny, "--new-env", "HUB_MAX_PAGE_SIZE=2")
    _assert_no_rate(capped)
    assert "the new hub's page request failed" in capped.stderr
    # A setting that changes nothing the bench checks: figures, the setting named above them.
    settings = ("HUB_MAX_PAGE_SIZE=50", "HUB_PSEUDONYM_KEY=synthetic-bench-secret")
    given = [option for pair in settings for option in ("--new-env", pair)]
    good = _bench("bench-read", "--database-url", url, *tiny, *given)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "run with HUB_MAX_PAGE_SIZE=50 HUB_PSEUDONYM_KEY=***," in good.stdout
    assert "synthetic-bench-secret" not in good.stdout + good.stderr
    # What the bench sets for every hub, or not a hub setting at all: refused before any hub.
    for pair in ("HUB_DATABASE_URL=sqlite://", "PATH=/tmp", "HUB_MODE"):
        refused = _bench("bench-read", "--database-url", url, *tiny, "--new-env", pair)
        _assert_no_rate(refused)
        assert "--new-env" in refused.stderr
    counted = _bench("bench-read", "--instructions", "1", "--new-env", "HUB_MAX_PAGE_SIZE=50")
    assert counted.returncode == 2, counted.stdout + counted.stderr  # a usage error
    assert "--new-env" in counted.stderr


@pytest.mark.skipif(is_postgres(), reason="slow under valgrind: run once, in the SQLite suite")
def test_bench_read_counts_instructions_of_both_hubs(tmp_path: Path) -> None:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        if os.getenv("CI") == "true":
            pytest.fail("valgrind is not installed: CI must run bench-read --instructions")
        pytest.skip("counting needs valgrind (apt-get install valgrind)")
    counted = _bench(
        "bench-read",
        "--database-url",
        _database(tmp_path, "counted.db"),
        "--instructions",
        "2",
        "--records",
        "6",
        "--page-size",
        "5",
    )
    assert counted.returncode == 0, counted.stdout + counted.stderr
    figures = {
        tuple(line.split()[:2]): float(line.split()[2])
        for line in counted.stdout.splitlines()
        if line.startswith(("baseline ", "new "))
    }
    queries = ("page", "ids", "floor", "push")
    assert set(figures) == {(h, q) for h in ("baseline", "new") for q in queries}
    # A page of records, and its ids alone, cost more than a request that returns none, in
    # either hub.
    for hub_name in ("baseline", "new"):
        page, ids, floor = (figures[(hub_name, q)] for q in ("page", "ids", "floor"))
        assert page > floor > 0
        assert ids > floor
    # The baseline completes each field in Python: its page costs more than its ids. This
    # code's page is written by SQLite, within about a tenth of its ids, less than the count
    # moves with the audit's indexing (one trip or two in a window of two requests): seen at
    # 8.02 M against ids' 8.18 M, and at 8.54 M and 8.87 M against 8.15 M.
    assert figures[("baseline", "page")] > figures[("baseline", "ids")]
    assert "by instructions, new: page-to-floor 0." in counted.stdout
    assert figures[("new", "push")] > figures[("new", "floor")]  # a push writes and audits
    assert "page instructions new/baseline" in counted.stdout


@pytest.mark.skipif(not is_postgres(), reason="bench-audit loads with PostgreSQL's COPY")
def test_bench_audit_runs_tiny() -> None:
    run = _bench(
        "bench-audit", "--database-url", POSTGRES_URL, "--events", "3000", "--children", "40"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "verify" in run.stdout


@pytest.mark.skipif(not is_postgres(), reason="bench-report measures PostgreSQL's SQL path")
def test_bench_report_runs_tiny() -> None:
    run = _bench(
        "bench-report",
        "--database-url",
        POSTGRES_URL,
        "--incidents",
        "300",
        "--episodes",
        "40",
        "--events",
        "200",
        "--strategy-discussions",
        "40",
        "--initial-conferences",
        "12",
        "--review-conferences",
        "12",
        "--joint-visits",
        "20",
        "--protections",
        "10",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "national" in run.stdout
    assert "partnership loaded 40 strategy discussions" in run.stdout
    assert "partnership counted nationally" in run.stdout


@pytest.mark.skipif(not is_postgres(), reason="bench-listing measures PostgreSQL's plans")
def test_bench_listing_runs_tiny() -> None:
    run = _bench(
        "bench-listing",
        "--database-url",
        POSTGRES_URL,
        "--others",
        "600",
        "--runs",
        "2",
        "--ours",
        "40",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "(40 of its own, half through a child)" in run.stdout, run.stdout
    for kind in LISTED:
        assert re.search(rf"{kind} +one statement .* one/branches \d", run.stdout), run.stdout
    # Too few of the council's records for a page: no figures, the reason.
    short = _bench("bench-listing", "--database-url", POSTGRES_URL, "--others", "600", "--even")
    assert short.returncode == 1
    assert "raise --others" in short.stderr
    assert "one/branches" not in short.stdout


@pytest.mark.skipif(not is_postgres(), reason="bench-escalation loads with PostgreSQL's COPY")
def test_bench_escalation_runs_tiny() -> None:
    run = _bench("bench-escalation", "--database-url", POSTGRES_URL, "--episodes", "300")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "steady/first" in run.stdout
    raised = int(run.stdout.split("escalations raised")[0].split(",")[-1].split()[0])
    assert raised > 0


def test_a_run_with_failures_has_no_figures() -> None:
    failed = Figures("queries", 10, 1.0, [0.1] * 10, errors=3, first_error="errors FORBIDDEN")
    with pytest.raises(BenchFailed, match=r"3 of 10 queries failed \(first: errors FORBIDDEN\)"):
        failed.checked()
    whole = Figures("queries", 10, 1.0, [0.1] * 10, errors=0)
    assert whole.checked() is whole


def test_report_runs_that_disagree_or_judge_nothing_have_no_figures() -> None:
    council, national = (0.1, 50, 2), (0.5, 900, 30)
    _check_answers([council] * 3 + [national] * 3)
    with pytest.raises(BenchFailed, match="disagree or judged nothing"):
        _check_answers([council] * 3 + [national, (0.5, 899, 30), national])
    with pytest.raises(BenchFailed):
        _check_answers([council] * 3 + [(0.5, 0, 0)] * 3)


def test_bench_subscriptions_runs_tiny_on_both_paths(tmp_path: Path) -> None:
    # Two processes share the outbox through PostgreSQL's NOTIFY; SQLite serves one.
    processes = "2" if is_postgres() else "1"
    run = _bench(
        "bench-subscriptions",
        "--database-url",
        _database(tmp_path, "subscriptions.db"),
        "--subscribers",
        "4",
        "--processes",
        processes,
        "--rate",
        "4",
        "--seconds",
        "1",
        "--path",
        "both",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    delivered = [line for line in run.stdout.splitlines() if line.startswith("delivered")]
    assert len(delivered) == 2, run.stdout
    assert all(" 16 in " in line and "errors 0" in line for line in delivered), run.stdout
    assert "per-subscriber / fan-out" in run.stdout


def test_a_subscription_run_missing_a_delivery_has_no_figures() -> None:
    from hub.changes.bench import _deliveries, _Subscriber  # noqa: PLC0415 - the check itself

    whole, short = _Subscriber(socket=None), _Subscriber(socket=None)  # type: ignore[arg-type]
    whole.received = {"A": 1.1, "B": 1.2}
    short.received = {"A": 1.1}
    sent = {"A": 1.0, "B": 1.0}
    assert _deliveries([whole], {"A", "B"}, sent, 1.0).checked().count == 2
    with pytest.raises(BenchFailed, match="1 of 2 pushes never delivered"):
        _deliveries([whole, short], {"A", "B"}, sent, 1.0).checked()
    short.received["B"] = 1.3
    short.failure = "errors AUDIT_UNAVAILABLE"
    with pytest.raises(BenchFailed, match="AUDIT_UNAVAILABLE"):
        _deliveries([whole, short], {"A", "B"}, sent, 1.0).checked()


@pytest.mark.skipif(not is_postgres(), reason="PostGraphile serves PostgreSQL only")
def test_bench_peer_runs_tiny() -> None:
    from hub.bench_peer import PEER_DIR, peer_installed  # noqa: PLC0415

    if not peer_installed():
        reason = f"PostGraphile is not installed: npm ci --prefix {PEER_DIR}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)  # .ci/run installs it: missing there is a broken CI
        pytest.skip(reason)
    run = _bench(
        "bench-peer",
        "--database-url",
        POSTGRES_URL,
        "--concurrency",
        "2",
        "--concurrency",
        "1",
        "--requests",
        "4",
        "--turns",
        "2",
        "--page-size",
        "3",
        "--records",
        "6",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no policy, no audit" in run.stdout
    ratios = [line for line in run.stdout.splitlines() if "hub / PostGraphile" in line]
    assert len(ratios) == 2, run.stdout
    # Each concurrency's CPU per request, side by side: the hub's with its audit's indexing.
    spent = [line.strip() for line in run.stdout.splitlines() if "cpu/request:" in line]
    assert [line.split(" ms")[0].split(": ")[1].rsplit(" ", 1)[0] for line in spent] == [
        "hub",
        "PostGraphile",
    ] * 2, run.stdout
    assert all("database" in line and "bench client" in line for line in spent), run.stdout
    assert all(line.endswith("(its audit's indexing included)") for line in spent[::2])


def test_a_peer_answer_with_errors_or_short_is_a_failure() -> None:
    from hub.bench_peer import _short  # noqa: PLC0415 - the check itself

    whole = {"data": {"allIncidents": {"nodes": [{}, {}]}}}
    assert _short(whole, root="allIncidents", expected=2) is None
    assert _short(whole, root="allIncidents", expected=3) == "2 records where 3 were asked for"
    hub = {"data": {"incidents": {"edges": [{}]}}}
    assert _short(hub, root="incidents", expected=1) is None
    failed = {"data": None, "errors": [{"message": "x", "extensions": {"code": "FORBIDDEN"}}]}
    assert _short(failed, root="incidents", expected=1) == "errors FORBIDDEN"


@pytest.mark.skipif(not is_postgres(), reason="bench-pushes serves two workers: PostgreSQL")
def test_bench_pushes_prints_ratios_or_refuses() -> None:
    tiny = ("--database-url", POSTGRES_URL, "--pushes", "6", "--concurrency", "2")
    # 40 pushes, not 6: the kernel counts a process's CPU in 10 ms ticks, by sampling, and six
    # pushes' 15 ms or so of the database's, spread over its backends, was sometimes none.
    counted = (*tiny[:2], "--pushes", "40", *tiny[4:])
    shape = ("--batch", "3", "--batches", "1", "--rounds", "1", "--workers", "1,2")
    run = _bench("bench-pushes", *counted, *shape, "--lock-waits")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pushes: workers=2 / workers=1 median" in run.stdout
    assert "batch records: workers=2 / workers=1 median" in run.stdout
    # Where each hub's single pushes spent CPU: its process (its workers'), PostgreSQL's, ours.
    spent = re.findall(r"cpu/push: hub ([0-9.]+) ms, database ([0-9.]+) ms", run.stdout)
    assert len(spent) == 2, run.stdout  # workers=1 and workers=2
    assert all(float(hub) > 0 and float(database) > 0 for hub, database in spent), spent
    # Sampled for lock waits (`--lock-waits`): each hub's line says over how many samples.
    sampled = re.findall(r"lock waits: [0-9.]+ of 2 pushes .* over ([0-9]+) samples", run.stdout)
    assert len(sampled) == 2, run.stdout
    assert all(int(n) > 0 for n in sampled), sampled
    # Batches over HUB_MAX_PUSH_BATCH (200): every one is refused, so no rate.
    refused = _bench("bench-pushes", *tiny, "--batch", "201", "--batches", "1", "--rounds", "1")
    _assert_no_rate(refused)


def test_a_refusal_names_its_reason_and_subgraph() -> None:
    from hub.bench import _failure  # noqa: PLC0415 - the check itself

    def answer(*errors: dict[str, Any]) -> Answer:
        return Answer(200, json.dumps({"data": {"child": None}, "errors": list(errors)}).encode())

    refused = {"extensions": {"code": "UNAUTHENTICATED", "reason": "expired"}}
    from_council = {"extensions": {"code": "UNAUTHENTICATED", "serviceName": "council"}}
    assert _failure(answer(refused), field="child") == "errors UNAUTHENTICATED (expired)"
    assert _failure(answer(from_council), field="child") == "errors UNAUTHENTICATED (council)"
    assert _failure(answer({"extensions": {"code": "FORBIDDEN"}}), field="child") == (
        "errors FORBIDDEN"
    )


def test_bench_flood_measures_each_phase_tiny(tmp_path: Path) -> None:
    database = _database(tmp_path, "flood.db")
    run = _bench("bench-flood", "--database-url", database, "--pushes", "10", "--concurrency", "4")
    assert run.returncode == 0, run.stdout + run.stderr
    phases = [line for line in run.stdout.splitlines() if " pushes " in line]
    assert len(phases) == 4, run.stdout  # no flood and flood, limits on and off
    assert all("pushes       10 in" in line and "errors 0" in line for line in phases), phases
    flooded = [re.search(r"served (\d+), refused \(429\) (\d+)", line) for line in phases]
    served = [int(m.group(1)) for m in flooded if m is not None]
    assert len(served) == 2, phases  # the two phases with a flood say what it got
    assert all(n > 0 for n in served), phases


def test_bench_gateway_compares_direct_and_through_the_gateway_tiny() -> None:
    from tests.test_gateway import _gateway_or_skip  # noqa: PLC0415 - the same skip rule

    _gateway_or_skip()
    run = _bench("bench-gateway", "--requests", "20", "--rounds", "2", "--concurrency", "2")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines() if line}
    assert "errors 0" in lines["direct"]
    assert "errors 0" in lines["gateway"]


def test_bench_webhooks_prints_delivery_rates_when_every_delivery_arrived(
    tmp_path: Path,
) -> None:
    run = _bench(
        "bench-webhooks",
        "--database-url",
        _database(tmp_path, "webhooks.db"),
        "--endpoints",
        "2",
        "--pushes",
        "4",
        "--concurrency",
        "2",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines() if line}
    assert "errors 0" in lines["pushes"]
    assert "8 to 2 endpoints" in lines["webhooks"]
    assert "/s" in lines["webhooks"]


def test_a_subscription_run_with_a_push_delivered_twice_has_no_figures() -> None:
    from hub.changes.bench import _deliveries, _read, _Subscriber  # noqa: PLC0415 - the check itself

    message = json.dumps(
        {
            "type": "next",
            "payload": {"data": {"recordChanges": {"record": {"policeReference": "A"}}}},
        }
    )

    class Socket:
        def __init__(self, count: int) -> None:
            self.raw = [message] * count

        def __aiter__(self) -> AsyncIterator[str]:
            return self._each()

        async def _each(self) -> AsyncIterator[str]:
            for raw in self.raw:
                yield raw

    once, twice = _Subscriber(socket=Socket(1)), _Subscriber(socket=Socket(2))  # type: ignore[arg-type]
    asyncio.run(_read(once))
    asyncio.run(_read(twice))
    assert (once.failure, once.messages) == (None, 1)
    assert twice.messages == 2
    with pytest.raises(BenchFailed, match="a push delivered twice"):
        _deliveries([once, twice], {"A"}, {"A": 1.0}, 1.0).checked()


def test_cpu_spent_leaves_out_a_backend_that_exited_rather_than_counting_it_negative() -> None:
    before = CpuSnapshot(hub=1.0, backends={"10": 2.0, "11": 5.0}, client=0.5)
    after = CpuSnapshot(hub=1.5, backends={"10": 2.25, "12": 0.5}, client=0.75)
    spent = before.until(after)
    # 11 exited (its last seconds are not seen); 12 started in between and counts whole.
    assert (spent.hub, spent.database, spent.client) == (0.5, 0.75, 0.25)
