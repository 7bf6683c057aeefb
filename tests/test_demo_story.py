"""The demo tells the story: after loading it, the report shows a prompt, a late and a batching
force at a glance."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hub import demo
from hub.db import Database
from hub.settings import Settings
from hub.timeliness import extract
from hub.timeliness.demo_story import BATCHING, LATE, PROMPT, next_monday_nine
from hub.timeliness.report_data import ReportScope


def test_uploads_are_on_monday_at_nine_uk_time() -> None:
    summer = next_monday_nine(dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC))  # a Wednesday, BST
    assert summer == dt.datetime(2026, 7, 6, 8, tzinfo=dt.UTC)
    monday = next_monday_nine(dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC))  # a Monday after nine
    assert monday == dt.datetime(2026, 1, 12, 9, tzinfo=dt.UTC)


async def test_the_demo_shows_late_and_batching_forces(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    settings = Settings(database_url=url, data_dir=tmp_path)
    printed = await demo.load(settings, base_url="http://127.0.0.1:9")
    assert "== auditor (OFSTED)" in printed
    assert "token:" in printed
    db = Database(url)
    today = dt.datetime.now(dt.UTC).date()
    try:
        data = await extract.report(
            db,
            targets=extract.targets_for(settings),
            period_from=today - dt.timedelta(days=190),
            period_to=today,
            scope=ReportScope(),
            as_of=dt.datetime.now(dt.UTC),
            pseudonym_key="demo",
        )
    finally:
        await db.dispose()
    scores = {s.force_code: s.score for s in data.batching_scores}
    assert scores[BATCHING] > 0.9
    assert scores[PROMPT] < 0.02
    assert scores[LATE] < 0.02
    assert {b.force_code for b in data.bursts} == {BATCHING}
    medians = {r.group.force_code: r.median_hours for r in data.by_force if r.target_id == "T9"}
    assert medians[PROMPT] is not None
    assert medians[PROMPT] < 4
    assert medians[LATE] is not None
    assert medians[LATE] > 48
    share = {r.group.force_code: r.share_within for r in data.by_force if r.target_id == "T9"}
    assert share[PROMPT] == 1.0
    assert share[LATE] == 0.0
