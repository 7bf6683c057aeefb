"""The hub's signing keys: a JWKS file of private keys. The first key signs; every key verifies.

Rotation puts a new key first and keeps the old ones, so tokens signed before the rotation verify
until they expire; pruning then drops the oldest. Keys are RSA 2048 with RS256, not P-256 with
ES256: RFC 9068 s.2.1 makes RS256 the one algorithm every conforming authorization server and
resource server must support, and the hub's tokens are also checked by a federation gateway and
by agencies' subgraphs that we do not control. RSA's larger signatures and slower signing cost
nothing that matters at a few tokens per client per ten minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from typing import TYPE_CHECKING, Any

from joserfc import jwk
from joserfc.errors import JoseError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from hub.settings import Settings

ALGORITHM = "RS256"
KEY_SIZE = 2048
DEV_KID_PREFIX = "dev-"
PRODUCTION_KID_PREFIX = "hub-"


class KeySetError(Exception):
    """The key set file is missing, unreadable, or not fit for the mode the hub runs in."""


class KeySet:
    """An ordered, immutable set of RSA private keys, each with a unique `kid`."""

    def __init__(self, keys: Sequence[jwk.RSAKey]) -> None:
        if not keys:
            raise KeySetError("a key set needs at least one key")
        kids = [_checked_kid(key) for key in keys]
        if len(set(kids)) != len(kids):
            raise KeySetError("key ids (kid) in a key set must be unique")
        self._keys = tuple(keys)
        self._by_kid = dict(zip(kids, keys, strict=True))

    @classmethod
    def generate(cls, *, development: bool) -> KeySet:
        return cls([_new_key(development=development)])

    @classmethod
    def load(cls, path: Path) -> KeySet:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            keys = [_import_key(data) for data in document["keys"]]
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError, JoseError) as error:
            raise KeySetError(f"cannot read the signing key set at {path}: {error}") from None
        return cls(keys)

    @classmethod
    def for_settings(cls, settings: Settings) -> KeySet:
        """Production refuses a missing file and development keys; development makes its own."""
        path = settings.keys_path
        if settings.is_production:
            return _production_key_set(path)
        try:
            return cls.load(path)
        except FileNotFoundError:
            return _create_development_key_set(path)

    @property
    def signing_key(self) -> jwk.RSAKey:
        return self._keys[0]

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._by_kid)

    @property
    def development_kids(self) -> tuple[str, ...]:
        return tuple(kid for kid in self._by_kid if kid.startswith(DEV_KID_PREFIX))

    def verification_key(self, kid: str) -> jwk.RSAKey | None:
        return self._by_kid.get(kid)

    def signing_jwks(self) -> jwk.KeySet:
        """Just the signing key, as a set: joserfc then writes its `kid` into the JWS header."""
        return jwk.KeySet([self.signing_key])

    def public_jwks(self) -> dict[str, Any]:
        """What `/.well-known/jwks.json` publishes: every key, public parts only."""
        return {"keys": [key.as_dict(private=False) for key in self._keys]}

    def rotated(self, *, development: bool) -> KeySet:
        return KeySet([_new_key(development=development), *self._keys])

    def pruned(self, *, keep: int) -> KeySet:
        if keep < 1:
            raise KeySetError("keep at least one key: the first key signs")
        return KeySet(self._keys[:keep])

    def save(self, path: Path) -> None:
        """Replace the file atomically, readable by its owner only (it holds private keys)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = _write_private_temporary(path, self.private_json())
        temporary.replace(path)

    def private_json(self) -> str:
        """The key file's contents, private parts included: for writing that file, nothing else."""
        keys = [key.as_dict(private=True) for key in self._keys]
        return json.dumps({"keys": keys}, indent=2) + "\n"


def rotate(path: Path, *, development: bool = False) -> KeySet:
    """Put a new signing key first; create the file if there is none yet."""
    try:
        current = KeySet.load(path)
    except FileNotFoundError:
        rotated = KeySet.generate(development=development)
    else:
        rotated = current.rotated(development=development)
    rotated.save(path)
    return rotated


def prune(path: Path, *, keep: int) -> KeySet:
    """Drop the oldest keys: tokens they signed stop verifying, so wait a token lifetime first."""
    pruned = KeySet.load(path).pruned(keep=keep)
    pruned.save(path)
    return pruned


def _new_key(*, development: bool) -> jwk.RSAKey:
    # A dated kid tells an operator how old a key is when deciding what to prune.
    prefix = DEV_KID_PREFIX if development else PRODUCTION_KID_PREFIX
    kid = f"{prefix}{dt.datetime.now(dt.UTC):%Y%m%d}-{secrets.token_hex(4)}"
    return jwk.RSAKey.generate_key(KEY_SIZE, {"kid": kid, "use": "sig", "alg": ALGORITHM})


def _import_key(data: dict[str, Any]) -> jwk.RSAKey:
    key = jwk.RSAKey.import_key(data)
    if not key.is_private:
        raise ValueError(f"key {key.kid} has no private part")
    if key.alg not in {None, ALGORITHM}:
        raise ValueError(f"key {key.kid} is for {key.alg}, the hub signs with {ALGORITHM}")
    if key.public_key.key_size < KEY_SIZE:
        raise ValueError(f"key {key.kid} is shorter than {KEY_SIZE} bits")
    return key


def _checked_kid(key: jwk.RSAKey) -> str:
    # Verification looks keys up by kid, so a key without one could never verify anything.
    if not key.kid:
        raise KeySetError("every key in the set needs a key id (kid)")
    return key.kid


def _production_key_set(path: Path) -> KeySet:
    try:
        keys = KeySet.load(path)
    except FileNotFoundError:
        raise KeySetError(
            f"production mode needs the signing key set at {path}; create it with "
            "`safeguarding-hub keys rotate` (HUB_MODE=production)"
        ) from None
    if keys.development_kids:
        raise KeySetError(
            f"production mode refuses development keys ({', '.join(keys.development_kids)}) in "
            f"{path}: rotate in production mode, then prune them"
        )
    return keys


def _create_development_key_set(path: Path) -> KeySet:
    """Write a fresh development key set, unless another process got there first."""
    keys = KeySet.generate(development=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _write_private_temporary(path, keys.private_json())
    try:
        # link() refuses an existing target, so two replicas starting together agree on one set.
        os.link(temporary, path)
    except FileExistsError:
        return KeySet.load(path)
    finally:
        temporary.unlink()
    return keys


def _write_private_temporary(path: Path, text: str) -> Path:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return temporary
