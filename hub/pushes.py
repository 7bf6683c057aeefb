"""Idempotent pushes: police and council systems retry until answered, and a retry must never
duplicate.

A push is identified by its natural key (force and police reference; for a council's push,
council and council reference) or by the client's idempotency key. Its content is
fingerprinted: the same content again returns the stored record, different content under the
same key is a CONFLICT. Concurrent identical pushes race on the
database's unique constraints; the loser rolls back to a savepoint and finds the winner's row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.errors import Conflict
from hub.json_text import compact_json


class Fingerprinted(Protocol):
    payload_hash: str


class Pushed(Fingerprinted, Protocol):
    force_code: str
    police_reference: str
    idempotency_key: str | None


class PushKeys(Protocol):
    """What names a push: the force's police reference, and the client's idempotency key if any."""

    @property
    def police_reference(self) -> str: ...

    @property
    def idempotency_key(self) -> str | None: ...


T = TypeVar("T")
RecordT = TypeVar("RecordT", bound=Fingerprinted)
PushedT = TypeVar("PushedT", bound=Pushed)


def fingerprint(command: Any) -> str:
    """The content of a push. The idempotency key is left out: it names the push, it is not it."""
    payload = _plain(command)
    payload.pop("idempotency_key", None)
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


# The text every stored push was fingerprinted from: `json.dumps(value, sort_keys=True,
# default=str, separators=(",", ":"))`, its encoder made once (a batch fingerprints hundreds).
_canonical = compact_json(sort_keys=True, default=str, ensure_ascii=True)
# A dataclass's field names, by class: `dataclasses.fields` filters its fields on every call.
_FIELDS: dict[type, tuple[str, ...]] = {}
# Values `dataclasses.asdict` hands back as they are (its deep copy of them is themselves).
_AS_THEY_ARE = frozenset({str, int, float, bool, type(None), dt.date, dt.datetime})


def _plain(value: Any) -> Any:
    """`dataclasses.asdict` without its deep copies (a batch fingerprints hundreds of pushes):
    the same dicts and lists, so the same JSON and the same fingerprint as pushes stored before.
    """
    kind = type(value)
    if kind in _AS_THEY_ARE:
        return value
    names = _FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {
            name: item if type(item := getattr(value, name)) in _AS_THEY_ARE else _plain(item)
            for name in names
        }
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    return value


async def find_pushed(
    session: AsyncSession,
    model: type[PushedT],
    *,
    force_code: str,
    push: PushKeys,
) -> PushedT | None:
    """The force's earlier push under this one's police reference or idempotency key, if any."""
    return await find_keyed(
        session,
        model,
        owner=(col(model.force_code), force_code),
        reference=(col(model.police_reference), push.police_reference),
        idempotency_key=(col(model.idempotency_key), push.idempotency_key),
    )


async def find_keyed(
    session: AsyncSession,
    model: type[T],
    *,
    owner: tuple[Any, str],
    reference: tuple[Any, str],
    idempotency_key: tuple[Any, str | None],
) -> T | None:
    """The owner's earlier push under this reference or idempotency key (each a column and the
    push's value), if any: the one lookup behind every push's natural key."""
    (owner_column, code), (reference_column, value) = owner, reference
    key_column, key = idempotency_key
    keys = [reference_column == value]
    if key is not None:
        keys.append(key_column == key)
    query = sa.select(model).where(owner_column == code, sa.or_(*keys)).limit(1)
    found: T | None = (await session.execute(query)).scalar_one_or_none()
    return found


def same_or_conflict(
    existing: RecordT, payload_hash: str, *, what: str, reference: str = "police reference"
) -> RecordT:
    """`reference` names the push's natural key as its sender knows it (a council's own)."""
    if existing.payload_hash != payload_hash:
        raise Conflict(
            f"a different {what} was already pushed with this {reference} or idempotency key"
        )
    return existing


async def insert_once(
    session: AsyncSession,
    *,
    find: Callable[[], Awaitable[RecordT | None]],
    insert: Callable[[], Awaitable[RecordT]],
    payload_hash: str,
    what: str,
    reference: str = "police reference",
) -> tuple[RecordT, bool]:
    """Return (record, created). Inserts inside a savepoint so a lost race loses nothing else.

    `reference` names the push's natural key in a CONFLICT's message.
    """
    existing = await find()
    if existing is not None:
        return same_or_conflict(existing, payload_hash, what=what, reference=reference), False
    try:
        async with session.begin_nested():
            record = await insert()
    except IntegrityError:
        existing = await find()
        if existing is None:
            raise
        return same_or_conflict(existing, payload_hash, what=what, reference=reference), False
    return record, True
