"""`bench-soak` at a tiny size, run as a newcomer runs it: a line per time slice (requests, p99,
subscription deliveries, the server's memory) and the growth and drift between first and last."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import is_postgres
from tests.test_bench_commands import _assert_no_rate, _bench, _database


def test_bench_soak_reports_slices_memory_growth_and_p99_drift(tmp_path: Path) -> None:
    run = _bench(
        "bench-soak",
        "--database-url",
        _database(tmp_path, "soak.db"),
        "--seconds",
        "6",
        "--slices",
        "2",
        "--concurrency",
        "2",
        "--subscribers",
        "1",
        *(["--vacuum-every", "2"] if is_postgres() else []),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    if is_postgres():  # the server's autovacuum said, and the bench's own run in its place
        assert re.match(
            r"the server's autovacuum: (on|off); VACUUM ANALYZE every 2 s by the bench "
            r"\([12] runs\)",
            lines[0],
        ), lines[0]
    slices = [line for line in lines if line.startswith("slice")]
    assert len(slices) == 2
    for line in slices:
        assert re.search(r"requests +[1-9]\d*  p99 +\d+\.\d ms", line), line
        assert re.search(r"rss +\d+\.\d MiB", line), line  # Linux: /proc is there
    # The subscription saw the pushes (one delivery per pushed record at least).
    deliveries = [int(re.findall(r"deliveries +(\d+)", line)[0]) for line in slices]
    assert sum(deliveries) > 0
    assert re.match(r"memory growth [+-]\d+\.\d MiB .*; p99 drift x\d+\.\d\d", lines[-1])


def test_bench_soak_vacuums_only_a_postgresql_database(tmp_path: Path) -> None:
    run = _bench(
        "bench-soak",
        "--database-url",
        f"sqlite+aiosqlite:///{tmp_path / 'soak.db'}",
        "--seconds",
        "2",
        "--vacuum-every",
        "1",
    )
    _assert_no_rate(run)
    assert "--vacuum-every vacuums a PostgreSQL database" in run.stderr
