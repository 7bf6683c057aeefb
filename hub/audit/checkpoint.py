"""Signed checkpoints: the chain's head, signed with the hub's key, kept where the log is not.

The hash chain shows an event altered or removed in the middle, but not the newest events
deleted together with the head: the shortened chain is whole. A checkpoint (in the spirit of
Certificate Transparency's signed tree heads) is the head's seq and hash at a moment, a compact
JWS signed with the hub's current key and verifiable with its published JWKS. Kept by someone
the database's operator cannot overwrite, it proves that the log once reached that far:
`extends` checks that the event at that seq is still there with that hash. (`verify` checks the
links from there to the head.) Anyone holding the signing key can sign a new checkpoint but not
unsign an old one; that is why they are exported as they are made.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from joserfc import jws
from joserfc.errors import JoseError

from hub.access.keys import ALGORITHM
from hub.audit import chain
from hub.audit.models import GENESIS_HASH, HASH_LENGTH

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from hub.access.keys import KeySet

# The JWS `typ`: a checkpoint can never pass for an access token (`at+jwt`), nor one for it.
CHECKPOINT_TYPE = "hub-audit-checkpoint+jws"


class CheckpointInvalid(ValueError):
    """Not a checkpoint this hub signed: malformed, an unknown key, a bad signature."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    issuer: str
    seq: int  # the head's seq: how long the chain was (0 for an empty chain)
    head_hash: str
    issued_at: dt.datetime

    def claims(self) -> dict[str, Any]:
        return {
            "iss": self.issuer,
            "iat": int(self.issued_at.timestamp()),
            "seq": self.seq,
            "head_hash": self.head_hash,
        }

    def signed(self, keys: KeySet) -> str:
        header = {"alg": ALGORITHM, "typ": CHECKPOINT_TYPE, "kid": keys.signing_key.kid}
        payload = json.dumps(self.claims(), separators=(",", ":"))
        return jws.serialize_compact(header, payload, keys.signing_key, algorithms=[ALGORITHM])


async def current(session: AsyncSession, *, issuer: str) -> Checkpoint:
    head = await chain.read_head(session)
    if head is None:
        raise chain.ChainHeadMissing("the audit chain head row is missing")
    return Checkpoint(
        issuer=issuer,
        seq=head.last_seq,
        head_hash=head.last_hash,
        issued_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )


def read(text: str, keys: KeySet) -> Checkpoint:
    """The checkpoint in a compact JWS, its signature checked against the hub's keys."""
    try:
        signed = jws.extract_compact(text.strip().encode())
        header = signed.headers()
        key = keys.verification_key(str(header.get("kid")))
        if header.get("typ") != CHECKPOINT_TYPE or key is None:
            raise CheckpointInvalid("not a checkpoint signed with a key this hub holds")
        if not jws.validate_compact(signed, key, algorithms=[ALGORITHM]):
            raise CheckpointInvalid("the checkpoint's signature is not valid")
        claims = json.loads(signed.payload)
        return _checkpoint_of(claims)
    except (JoseError, ValueError, TypeError, KeyError) as error:
        if isinstance(error, CheckpointInvalid):
            raise
        raise CheckpointInvalid("not a well-formed checkpoint") from None


def _checkpoint_of(claims: dict[str, Any]) -> Checkpoint:
    seq, head_hash = claims["seq"], claims["head_hash"]
    if not isinstance(seq, int) or seq < 0 or len(str(head_hash)) != HASH_LENGTH:
        raise CheckpointInvalid("not a well-formed checkpoint")
    return Checkpoint(
        issuer=str(claims["iss"]),
        seq=seq,
        head_hash=str(head_hash),
        issued_at=dt.datetime.fromtimestamp(int(claims["iat"]), dt.UTC),
    )


async def extends(session: AsyncSession, checkpoint: Checkpoint) -> str | None:
    """None when the log still holds the checkpoint's head; else why not (seqs only)."""
    head = await chain.read_head(session)
    if head is None:
        return "the chain head row is missing"
    if head.last_seq < checkpoint.seq:
        return f"the log ends at seq {head.last_seq}, before the checkpoint's seq {checkpoint.seq}"
    if checkpoint.seq == 0:
        return None if checkpoint.head_hash == GENESIS_HASH else "an empty chain has no such hash"
    stored = await session.scalar(
        sa.select(chain.EVENTS.c.hash).where(chain.EVENTS.c.seq == checkpoint.seq)
    )
    if stored is not None:
        same = stored == checkpoint.head_hash
        return None if same else f"event {checkpoint.seq} is not the one the checkpoint names"
    return await _erased(session, checkpoint)


async def _erased(session: AsyncSession, checkpoint: Checkpoint) -> str | None:
    # A lawful erasure keeps the hash of the last event it removed: a checkpoint at exactly that
    # seq still checks; one inside the erased range can no longer be checked either way.
    for erasure in (await chain.erasures(session)).values():
        if erasure.first_seq <= checkpoint.seq <= erasure.last_seq:
            if checkpoint.seq == erasure.last_seq and erasure.anchor_hash == checkpoint.head_hash:
                return None
            return (
                f"event {checkpoint.seq} was erased lawfully (seq {erasure.first_seq}.."
                f"{erasure.last_seq}): check a checkpoint taken after the erasure"
            )
    return f"event {checkpoint.seq} is missing"
