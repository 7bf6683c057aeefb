"""`hub.base.stored`: a stored value to its enum member, as the enum's own call gives it."""

from __future__ import annotations

import pytest

from hub.base import stored
from hub.incidents.models import DashRisk, IncidentType
from hub.reference.models import Nation, OrganisationKind


@pytest.mark.parametrize("kind", [IncidentType, DashRisk, OrganisationKind, Nation])
def test_every_value_and_member_gives_the_enums_own_member(kind: type) -> None:
    member_of = stored(kind)
    for member in kind:
        assert member_of(member.value) is kind(member.value)
        assert member_of(member) is member


def test_an_unknown_value_is_refused() -> None:
    with pytest.raises(KeyError):
        stored(DashRisk)("not-a-risk")
