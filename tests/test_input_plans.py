"""A planned input is the very instance Strawberry's own conversion builds (`input_plans`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.types.scalar import DEFAULT_SCALAR_REGISTRY
from strawberry.types.arguments import convert_argument
from strawberry.types.base import StrawberryList

from hub.children.types import ChildInput
from hub.incidents.models import DashRisk, IncidentType
from hub.incidents.types import InvolvedChildInput, ReportIncidentInput

CHILD = {"policeReference": "P-1", "givenName": "Ada", "familyName": "Example"}
FULL: dict[str, Any] = {
    "policeReference": "WM-1",
    "type": IncidentType.DOMESTIC_ABUSE,
    "occurredAt": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC),
    "recordedAt": dt.datetime(2026, 1, 2, 4, 4, tzinfo=dt.UTC),
    "locationCouncil": "E08000025",
    "children": [
        {
            "child": {
                **CHILD,
                "dateOfBirth": dt.date(2015, 5, 6),
                "nhsNumber": "9434765919",
                "hostCouncil": "E08000026",
                "lookedAfter": True,
            },
            "present": True,
            "victim": True,
        },
        {"child": {**CHILD, "dateOfBirth": dt.date(2016, 5, 6)}},
    ],
    "dashRisk": DashRisk.HIGH,
    "summary": "s",
    "operationalNotes": "n",
    "idempotencyKey": "k-1",
}
# As graphql-core gives it when the client sends only what is required (defaults filled in
# where the schema publishes them), and with explicit nulls.
BARE: dict[str, Any] = {
    key: FULL[key]
    for key in ("policeReference", "type", "occurredAt", "recordedAt", "locationCouncil")
} | {
    "children": [{"child": {**CHILD, "dateOfBirth": dt.date(2015, 5, 6)}, "present": False}],
    "dashRisk": None,
    "idempotencyKey": None,
}

PLANNED = (ReportIncidentInput, InvolvedChildInput)


def _convert(value: Any) -> Any:
    return convert_argument(
        value,
        StrawberryList(ReportIncidentInput),
        DEFAULT_SCALAR_REGISTRY,
        StrawberryConfig(),
        None,
        path=("input",),
    )


def _strawberry_s(value: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patched:
        for cls in PLANNED:
            patched.setattr(cls.__strawberry_definition__, "from_input", None)  # type: ignore[attr-defined]
        return _convert(value)


@pytest.mark.parametrize("value", [FULL, BARE], ids=["every field", "required only"])
def test_a_planned_input_is_the_one_strawberry_builds(
    value: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert all(cls.__strawberry_definition__.from_input for cls in PLANNED)  # type: ignore[attr-defined]
    planned = _convert([value, value])
    assert planned == _strawberry_s([value, value], monkeypatch)
    assert isinstance(planned[0].children[0].child, ChildInput)
    assert planned[0].children is not value["children"]  # a list of its own, not the request's
