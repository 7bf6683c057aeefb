"""OpenTelemetry metrics of sharing: how long each push took to reach the hub, and breaches.

Recorded when a push arrives (event to shared): a histogram of the delay in hours and a counter
of pushes already past a target, both by kind of record and force, and the counter also by
target. Attributes are codes only: no record, child or person ever appears in a metric.
"""

from __future__ import annotations

import datetime as dt

from opentelemetry import metrics
from opentelemetry.metrics import Meter, MeterProvider

from hub.timeliness.targets import TargetSet

# Bucket edges in hours: minutes, the 24-hour practice, days, weeks.
BOUNDARIES = (0.25, 0.5, 1, 2, 4, 8, 12, 24, 48, 72, 120, 168, 336, 672)


class SharingMetrics:
    def __init__(self, meter: Meter) -> None:
        self.delay = meter.create_histogram(
            "hub.sharing.delay",
            unit="h",
            description="Hours from the event to the push reaching the hub, by kind and force.",
            explicit_bucket_boundaries_advisory=BOUNDARIES,
        )
        self.breaches = meter.create_counter(
            "hub.sharing.breaches",
            unit="{push}",
            description="Pushes that reached the hub after a target's deadline.",
        )

    def shared(
        self,
        *,
        kind: str,
        force_code: str,
        event_at: dt.datetime,
        shared_at: dt.datetime,
        nation: str,
        targets: TargetSet,
    ) -> None:
        attributes = {"hub.kind": kind, "hub.force": force_code}
        self.delay.record((shared_at - event_at).total_seconds() / 3600, attributes)
        for target in targets.for_stage(kind, "event_to_shared"):
            if not target.met(event_at, shared_at, nation):
                self.breaches.add(1, {**attributes, "hub.target": target.id})


_current = SharingMetrics(metrics.get_meter("hub.timeliness"))


def current() -> SharingMetrics:
    return _current


def use_meter_provider(provider: MeterProvider) -> SharingMetrics:
    """Record into `provider` from now on (tests, or a host process with its own provider)."""
    global _current  # noqa: PLW0603 - one set of instruments per process, swapped as a whole
    _current = SharingMetrics(provider.get_meter("hub.timeliness"))
    return _current
