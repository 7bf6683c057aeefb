"""Cursors: opaque positions in a list, sealed by the hub and bound to the list and the caller.

A cursor carries a position (a record's id, an access's place in the log, a change's seq) that
the caller must not read: a record id in a cursor would be a read nobody audited. So the
position is encrypted and authenticated (AES-GCM) under a key the hub derives from its
pseudonym key, with the list's kind and the caller's organisation and role as associated data:
a cursor opens only on the list that gave it out, for the same organisation in the same role.
It does not name the client or the person, so a subscriber that reconnects with a fresh token
resumes from its last cursor. Anything else (tampered, foreign, garbage) is refused as a cursor
this API never gave out.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.errors import InvalidInput

# Distinct from every other use of the pseudonym key: a cursor key reveals no pseudonym.
_KEY_INFO = b"safeguarding-hub cursor key v1"
_NONCE_BYTES = 12  # AES-GCM's standard nonce, random per cursor
_VERSION = b"\x01"  # leads the sealed bytes, so the format can change without ambiguity
_NOT_A_CURSOR = "after is not a cursor this API gave out"


def derive_key(secret: str) -> bytes:
    """The cursor key, from the hub's pseudonym key: no further secret to deploy."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO)
    return hkdf.derive(secret.encode())


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who a cursor is for: an organisation acting in a role (not a client or a person)."""

    organisation_code: str
    role: str


class CursorSeal:
    """Seals and opens cursors under one key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def from_secret(cls, secret: str) -> CursorSeal:
        return cls(derive_key(secret))

    def for_list(self, kind: str, caller: Caller) -> ListCursors:
        return ListCursors(self, _binding(kind, caller))

    def seal(self, position: str, *, binding: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, position.encode(), _VERSION + binding)
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode().rstrip("=")

    def open(self, cursor: str, *, binding: bytes) -> str:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, binascii.Error) as error:
            raise InvalidInput(_NOT_A_CURSOR, field="after") from error
        version, nonce, sealed = raw[:1], raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
        if version != _VERSION or len(nonce) != _NONCE_BYTES:
            raise InvalidInput(_NOT_A_CURSOR, field="after")
        try:
            return self._aead.decrypt(nonce, sealed, version + binding).decode()
        except (InvalidTag, UnicodeDecodeError) as error:
            raise InvalidInput(_NOT_A_CURSOR, field="after") from error


def _binding(kind: str, caller: Caller) -> bytes:
    # Unit separators: no organisation code or role contains one, so no two bindings collide.
    return f"{kind}\x1f{caller.organisation_code}\x1f{caller.role}".encode()


@dataclasses.dataclass(frozen=True)
class ListCursors:
    """The cursors of one list for one caller."""

    sealer: CursorSeal
    binding: bytes

    def seal(self, position: str) -> str:
        return self.sealer.seal(position, binding=self.binding)

    def open(self, cursor: str | None) -> str | None:
        """The position `cursor` names, or None for the start of the list."""
        return None if cursor is None else self.sealer.open(cursor, binding=self.binding)
