"""Client credentials without a database: secret hashing, ids, role fit, authentication."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hub.access import clients
from hub.access.models import OAuthClient, Role
from hub.db import utcnow
from hub.errors import InvalidInput, NotFound
from hub.reference.models import Organisation, OrganisationKind

SECRET = "a-long-random-secret-for-tests-0123456789"


def test_secret_hash_round_trip() -> None:
    secret_hash = clients.hash_secret(SECRET)
    assert secret_hash.startswith("$argon2id$")
    assert SECRET not in secret_hash
    assert clients.verify_secret(secret_hash, SECRET)
    assert not clients.verify_secret(secret_hash, SECRET + "x")
    assert not clients.verify_secret(secret_hash, "")


@pytest.mark.parametrize("secret_hash", [None, "", "not-a-hash", "$argon2id$broken"])
def test_verify_without_a_usable_hash_says_no(secret_hash: str | None) -> None:
    assert not clients.verify_secret(secret_hash, SECRET)


def test_client_ids_and_secrets() -> None:
    ids = {clients.new_client_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"hub_[0-9a-f]{20}", client_id) for client_id in ids)
    secret = clients.new_secret()
    assert len(secret) >= 43  # 256 bits, base64url
    assert clients.new_secret() != secret


def organisation(kind: OrganisationKind) -> Organisation:
    return Organisation(code="X", name="Somewhere", kind=kind.value)


FITS = [
    (Role.POLICE_OFFICER, OrganisationKind.POLICE_FORCE),
    (Role.COUNCIL_SOCIAL_WORKER, OrganisationKind.COUNCIL),
    (Role.SCHOOL_DSL, OrganisationKind.SCHOOL),
    (Role.AUDITOR, OrganisationKind.INSPECTORATE),
    (Role.DPO, OrganisationKind.POLICE_FORCE),
    (Role.DPO, OrganisationKind.COUNCIL),
    (Role.HUB_ADMIN, OrganisationKind.HUB_OPERATOR),
]


@pytest.mark.parametrize(("role", "kind"), [(r, k) for r in Role for k in OrganisationKind])
def test_role_fits_organisation_kind(role: Role, kind: OrganisationKind) -> None:
    if (role, kind) in FITS:
        clients.check_role_fits(role, organisation(kind))
        return
    with pytest.raises(InvalidInput) as caught:
        clients.check_role_fits(role, organisation(kind))
    assert caught.value.field == "role"


class _Session:
    """Just enough of an AsyncSession for the services that only get and add."""

    def __init__(self, *rows: Any) -> None:
        self.rows = {(type(row), _key(row)): row for row in rows}
        self.added: list[Any] = []
        self.flushes = 0

    async def get(self, model: type[Any], key: str) -> Any:
        return self.rows.get((model, key))

    def add(self, row: Any) -> None:
        self.added.append(row)
        self.rows[(type(row), _key(row))] = row

    async def flush(self) -> None:
        self.flushes += 1


def _key(row: Any) -> str:
    return str(row.client_id if isinstance(row, OAuthClient) else row.code)


def _client(**changes: Any) -> OAuthClient:
    return OAuthClient(
        client_id="hub_00000000000000000001",
        secret_hash=clients.hash_secret(SECRET),
        organisation_code="WEST_MIDLANDS",
        role=Role.POLICE_OFFICER.value,
        **changes,
    )


async def test_create_client_stores_only_a_hash() -> None:
    force = Organisation(code="WEST_MIDLANDS", name="West Midlands Police", kind="police_force")
    session: Any = _Session(force)
    client, secret = await clients.create_client(
        session,
        organisation_code="WEST_MIDLANDS",
        role="police_officer",
        name="  Case system  ",
    )
    assert session.added == [client]
    assert session.flushes == 1
    assert client.role == "police_officer"
    assert client.name == "Case system"
    assert secret not in client.secret_hash
    assert clients.verify_secret(client.secret_hash, secret)


async def test_create_client_checks_organisation_and_role() -> None:
    council = Organisation(code="E08000025", name="Birmingham", kind="council")
    session: Any = _Session(council)
    with pytest.raises(NotFound) as missing:
        await clients.create_client(session, organisation_code="NOWHERE", role=Role.AUDITOR)
    assert missing.value.field == "org"
    with pytest.raises(InvalidInput) as misfit:
        await clients.create_client(
            session, organisation_code="E08000025", role=Role.POLICE_OFFICER
        )
    assert misfit.value.field == "role"
    with pytest.raises(InvalidInput):
        await clients.create_client(session, organisation_code="E08000025", role="chief")
    assert session.added == []


async def test_authenticate_client() -> None:
    client = _client()
    session: Any = _Session(client)
    authenticate = clients.authenticate_client
    assert await authenticate(session, client_id=client.client_id, secret=SECRET) is client
    assert await authenticate(session, client_id=client.client_id, secret="wrong") is None
    assert await authenticate(session, client_id="hub_unknown", secret=SECRET) is None


async def test_revoked_client_does_not_authenticate_and_revocation_is_idempotent() -> None:
    client = _client()
    session: Any = _Session(client)
    revoked = await clients.revoke_client(session, client_id=client.client_id)
    first_revoked_at = revoked.revoked_at
    assert first_revoked_at is not None
    assert first_revoked_at <= utcnow()
    again = await clients.revoke_client(session, client_id=client.client_id)
    assert again.revoked_at == first_revoked_at
    assert session.flushes == 1
    authenticated = await clients.authenticate_client(
        session, client_id=client.client_id, secret=SECRET
    )
    assert authenticated is None


async def test_revoking_an_unknown_client() -> None:
    session: Any = _Session()
    with pytest.raises(NotFound) as caught:
        await clients.revoke_client(session, client_id="hub_unknown")
    assert caught.value.field == "client_id"
