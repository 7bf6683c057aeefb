"""A test run stopped by SIGTERM (CI cancelled: `.ci/run`'s `stop_suites`, or `timeout`) tears
its fixtures down, as after Ctrl-C (`tests/conftest.py`), so that what they started (the
fault suite's PostgreSQL server, scratch databases) does not outlive it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_SLEEPER = """
import time
from pathlib import Path

import pytest


@pytest.fixture
def held():
    Path({started!r}).write_text("")
    yield
    Path({torn_down!r}).write_text("")


def test_sleeps(held):
    time.sleep(120)
"""


def test_sigterm_tears_the_fixtures_down_and_says_interrupted(tmp_path: Path) -> None:
    started, torn_down = tmp_path / "started", tmp_path / "torn-down"
    sleeper = tmp_path / "test_sleeper.py"
    sleeper.write_text(_SLEEPER.format(started=str(started), torn_down=str(torn_down)))
    run = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-p", "tests.conftest", "--rootdir", str(tmp_path), str(sleeper)),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert run.poll() is None, "the run ended before its test began"
            assert time.monotonic() < deadline, "the test never began"
            time.sleep(0.05)
        run.send_signal(signal.SIGTERM)
        run.send_signal(signal.SIGTERM)  # as `timeout` passes it on: the teardown still runs
        code = run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert torn_down.exists()
    assert code == pytest.ExitCode.INTERRUPTED
