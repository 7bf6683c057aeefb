"""`bench-soak` at a tiny size, run as a newcomer runs it: a line per time slice (requests, p99,
subscription deliveries, the server's memory) and the growth and drift between first and last."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_bench_commands import _bench, _database


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
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    slices = [line for line in lines if line.startswith("slice")]
    assert len(slices) == 2
    for line in slices:
        assert re.search(r"requests +[1-9]\d*  p99 +\d+\.\d ms", line), line
        assert re.search(r"rss +\d+\.\d MiB", line), line  # Linux: /proc is there
    # The subscription saw the pushes (one delivery per pushed record at least).
    deliveries = [int(re.findall(r"deliveries +(\d+)", line)[0]) for line in slices]
    assert sum(deliveries) > 0
    assert re.match(r"memory growth [+-]\d+\.\d MiB .*; p99 drift x\d+\.\d\d", lines[-1])
