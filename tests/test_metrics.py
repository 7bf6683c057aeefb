"""OpenTelemetry metrics of sharing: a delay histogram and a breach counter, recorded as pushes
arrive, with codes only in their attributes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from hub.access.models import Role
from hub.settings import Settings
from hub.timeliness import extract, metrics
from tests.conftest import unique
from tests.factories import FORCE, REPORT_INCIDENT, incident, iso


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    metrics.use_meter_provider(MeterProvider(metric_readers=[reader]))
    yield reader
    metrics.use_meter_provider(MeterProvider())


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


async def test_a_late_push_is_measured_and_counted(
    as_role: Any, reader: InMemoryMetricReader
) -> None:
    occurred = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=30)
    reference = unique("MX")
    body = await as_role(Role.POLICE_OFFICER, FORCE)(
        REPORT_INCIDENT,
        {
            "input": incident(
                reference,
                occurredAt=iso(occurred),
                recordedAt=iso(occurred + dt.timedelta(hours=1)),
            )
        },
    )
    assert "errors" not in body, body
    points = _points(reader)
    [delay] = points["hub.sharing.delay"]
    assert dict(delay.attributes) == {"hub.kind": "domestic_abuse", "hub.force": FORCE}
    assert delay.count == 1
    assert 30 <= delay.sum < 30.1
    breaches = {p.attributes["hub.target"]: p.value for p in points["hub.sharing.breaches"]}
    # T9 (24 hours) is missed; T8 (the next school day) only when a school day began meanwhile.
    t8 = extract.targets_for(Settings()).get("T8")
    shared = dt.datetime.fromisoformat(body["data"]["reportIncident"]["sharedAt"])
    assert breaches == {"T9": 1} if t8.met(occurred, shared, "england") else {"T8": 1, "T9": 1}
    # No personal data or record identifiers: only these codes are ever attributes.
    for point in (*points["hub.sharing.delay"], *points["hub.sharing.breaches"]):
        assert set(point.attributes) <= {"hub.kind", "hub.force", "hub.target"}
        assert reference not in str(point.attributes)
    # A retry creates nothing and measures nothing.
    await as_role(Role.POLICE_OFFICER, FORCE)(
        REPORT_INCIDENT,
        {
            "input": incident(
                reference,
                occurredAt=iso(occurred),
                recordedAt=iso(occurred + dt.timedelta(hours=1)),
            )
        },
    )
    [again] = _points(reader)["hub.sharing.delay"]
    assert again.count == 1


def test_no_exporter_means_no_provider_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    from hub import telemetry  # noqa: PLC0415

    monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)
    monkeypatch.setattr(telemetry, "_metrics_configured", False)
    installed: list[Any] = []
    monkeypatch.setattr(telemetry.metrics, "set_meter_provider", installed.append)
    telemetry.configure_metrics()
    assert installed == []
    monkeypatch.setattr(telemetry, "_metrics_configured", False)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    telemetry.configure_metrics()
    assert len(installed) == 1
    assert isinstance(installed[0], MeterProvider)
    installed[0].shutdown()
