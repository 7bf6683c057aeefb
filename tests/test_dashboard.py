"""The dashboard in headless Chromium: the page loads, calls the API with the auditor's token, the
charts draw, and a screenshot is taken. CI must have Chromium (.ci/run installs it)."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from hub.access.models import Role
from tests.conftest import LiveServer
from tests.factories import COUNCIL, FORCE, REPORT_INCIDENT, child, incident, iso
from tests.test_vetting import REQUEST as VETTING_REQUEST
from tests.test_vetting import Caller, vetting_request

PROTECT = """mutation($input: RecordPoliceProtectionInput!) {
  recordPoliceProtection(input: $input) { id } }"""

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium() -> str:
    if CHROMIUM is None:
        if os.getenv("CI") == "true":
            pytest.fail("chromium is not installed: CI must run the dashboard's browser test")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)  # noqa: S603 - a fixed browser


async def test_the_page_carries_no_data_and_is_locked_down(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    response = await http.get(f"{live_server.url}/dashboard")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "<svg" not in response.text
    assert "sharingReport" not in response.text
    script = await http.get(f"{live_server.url}/dashboard/app.js")
    assert "sharingReport" in script.text


async def test_the_dashboard_draws_the_charts_in_chromium(
    http: httpx.AsyncClient, live_server: LiveServer, tmp_path: Path
) -> None:
    occurred = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=30)
    token = live_server.token(Role.POLICE_OFFICER, FORCE)
    pushed = await http.post(
        live_server.graphql_url,
        headers={"Authorization": f"Bearer {token}"},
        json={
            "query": REPORT_INCIDENT,
            "variables": {
                "input": incident(
                    f"DASH-{occurred:%H%M%S}",
                    occurredAt=iso(occurred),
                    recordedAt=iso(occurred + dt.timedelta(hours=1)),
                )
            },
        },
    )
    assert "errors" not in pushed.json()
    # A police protection without discussion: the partnership charts draw a bar, not "no records".
    protected = await http.post(
        live_server.graphql_url,
        headers={"Authorization": f"Bearer {token}"},
        json={
            "query": PROTECT,
            "variables": {
                "input": {
                    "policeReference": f"DASH-PP-{occurred:%H%M%S%f}",
                    "child": child(f"DASH-PP-{occurred:%H%M%S%f}-C"),
                    "takenAt": iso(occurred),
                    "recordedAt": iso(occurred + dt.timedelta(hours=1)),
                    "placedIn": "POLICE_STATION",
                    "consultedBefore": False,
                    "alternativesConsidered": ["NONE"],
                }
            },
        },
    )
    assert "errors" not in protected.json(), protected.json()
    # A council's check on a foster carer, open three weeks: past the 14 days of T11.
    council = Caller(http, live_server, Role.COUNCIL_SOCIAL_WORKER, COUNCIL)
    requested = await council(
        VETTING_REQUEST,
        {
            "input": vetting_request(
                f"DASH-V-{occurred:%H%M%S%f}", requested=occurred - dt.timedelta(days=21)
            )
        },
    )
    assert "errors" not in requested, requested
    today = dt.datetime.now(dt.UTC).date()
    auditor = live_server.token(Role.AUDITOR, "OFSTED")
    url = (
        f"{live_server.url}/dashboard#token={auditor}"
        f"&from={today - dt.timedelta(days=7)}&to={today}"
    )
    dom = _run(["--dump-dom", url], tmp_path / "dom-profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-state="ready"' in html, html[-3000:]
    charts = len(re.findall(r"<svg\b[^>]*\bdata-chart=", html))
    assert charts >= 3
    # Each chart is an SVG element the browser laid out as a picture, not a run of text.
    assert html.count('data-drawn="true"') == charts, html[-3000:]
    partnership = (
        'data-chart="attendance-by-force"',
        'data-chart="joint-visits-by-council"',
        'data-chart="protections-by-force"',
    )
    decided = (
        'data-chart="closures-by-force"',
        'data-chart="closures-by-council"',
        'data-chart="vetting-by-force"',
        'data-chart="vetting-by-council"',
        'data-chart="escalations-by-target"',
    )
    for drawn in (
        'data-chart="delay-by-force"',
        'data-chart="batching-score"',
        *partnership,
        *decided,
    ):
        assert drawn in html
    assert "without prior discussion" in html
    drawn_series = ('data-series="median"', 'data-series="p90"', 'data-series="score"')
    for series in (
        *drawn_series,
        'data-series="without-discussion"',
        'data-series="open-overdue"',  # the vetting charts draw the check waiting
    ):
        assert series in html
    assert auditor not in html.split("<body", 1)[1], "the token stayed in the page"
    shot = tmp_path / "dashboard.png"
    taken = _run([f"--screenshot={shot}", "--window-size=1280,900", url], tmp_path / "shot-profile")
    assert taken.returncode == 0, taken.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000, "the screenshot is nearly empty"


async def test_a_wrong_token_draws_nothing(live_server: LiveServer, tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    url = f"{live_server.url}/dashboard#token=not-a-token&from={today}&to={today}"
    dom = _run(["--dump-dom", url], tmp_path / "profile")
    assert 'data-state="error"' in dom.stdout
    assert not re.search(r"<svg\b[^>]*\bdata-chart=", dom.stdout)
