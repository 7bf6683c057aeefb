"""Machine clients: registering, finding, authenticating and revoking them. Services only flush.

A client's secret is shown once, at registration, and kept only as an Argon2id hash. The secrets
are long random strings, so the hash is there so that a copy of the database is not a copy of
every agency's credentials, not to slow down guessing.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import col, select

from hub.access.agreement import default_path, organisation_kinds
from hub.access.models import OAuthClient, Role
from hub.db import utcnow
from hub.errors import InvalidInput, NotFound
from hub.reference.models import Organisation
from hub.settings import get_settings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

CLIENT_ID_PREFIX = "hub_"

# Which kind of organisation each role can belong to: the agreement's parties, nobody else.

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Verified against when the client is unknown or revoked, so that a wrong client id takes as
    # long to refuse as a wrong secret and the timing does not reveal which ids exist.
    return _hasher.hash(secrets.token_urlsafe(32))


def new_client_id() -> str:
    # Hex only: a client id travels in HTTP Basic auth, where a colon would split it.
    return CLIENT_ID_PREFIX + secrets.token_hex(10)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(secret_hash: str | None, secret: str) -> bool:
    """Whether `secret` matches; with no hash, spend the same effort and say no."""
    try:
        return _hasher.verify(secret_hash or _dummy_hash(), secret) and secret_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def check_role_fits(role: Role, organisation: Organisation) -> None:
    # The agreement says who may hold which role; it is the one source of that rule.
    settings = get_settings()
    allowed = organisation_kinds(settings.agreement_file or default_path()).get(role, frozenset())
    if organisation.kind not in allowed:
        kinds = " or ".join(sorted(allowed))
        message = f"role {role} belongs to a {kinds}, not a {organisation.kind}"
        raise InvalidInput(message, field="role")


async def get_organisation(session: AsyncSession, *, code: str) -> Organisation:
    organisation = await session.get(Organisation, code)
    if organisation is None:
        raise NotFound(f"no organisation with code {code}", field="org")
    return organisation


async def check_role_for_organisation(
    session: AsyncSession, *, organisation_code: str, role: Role
) -> Organisation:
    organisation = await get_organisation(session, code=organisation_code)
    check_role_fits(role, organisation)
    return organisation


async def create_client(
    session: AsyncSession, *, organisation_code: str, role: Role | str, name: str = ""
) -> tuple[OAuthClient, str]:
    """Register a client; the plain secret is returned here and never again."""
    role = _role(role)
    await check_role_for_organisation(session, organisation_code=organisation_code, role=role)
    secret = new_secret()
    client = OAuthClient(
        client_id=new_client_id(),
        secret_hash=await asyncio.to_thread(hash_secret, secret),
        organisation_code=organisation_code,
        role=role.value,
        name=name.strip(),
    )
    session.add(client)
    await session.flush()
    return client, secret


async def get_client(session: AsyncSession, *, client_id: str) -> OAuthClient | None:
    """The client with this id, revoked or not; None when there is none."""
    return await session.get(OAuthClient, client_id)


async def list_clients(
    session: AsyncSession, *, organisation_code: str | None = None
) -> Sequence[OAuthClient]:
    query = select(OAuthClient).order_by(
        col(OAuthClient.organisation_code), col(OAuthClient.created_at)
    )
    if organisation_code is not None:
        query = query.where(col(OAuthClient.organisation_code) == organisation_code)
    return (await session.execute(query)).scalars().all()


async def authenticate_client(
    session: AsyncSession, *, client_id: str, secret: str
) -> OAuthClient | None:
    """The active client these credentials belong to, or None (unknown, revoked or wrong)."""
    client = await get_client(session, client_id=client_id)
    active = client if client is not None and client.revoked_at is None else None
    secret_hash = active.secret_hash if active is not None else None
    # Argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    matches = await asyncio.to_thread(verify_secret, secret_hash, secret)
    return active if matches else None


async def revoke_client(session: AsyncSession, *, client_id: str) -> OAuthClient:
    """Stop a client getting new tokens; revoking twice keeps the first time."""
    client = await get_client(session, client_id=client_id)
    if client is None:
        raise NotFound(f"no client with id {client_id}", field="client_id")
    if client.revoked_at is None:
        client.revoked_at = utcnow()
        await session.flush()
    return client


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role}", field="role") from None
