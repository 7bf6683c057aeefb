"""The caller of a graphql-transport-ws connection, from its `connection_init` payload.

Browsers cannot set headers on a WebSocket upgrade, and stock `graphql-ws` clients send
credentials only as `connectionParams`; so a subscription connection may carry the token, the
purpose and the person there instead of on the upgrade request. They are the same three values,
verified the same way (`revocation.authenticate_live`): the payload is read as if it were
headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.access.identity import ON_BEHALF_OF_HEADER, PURPOSE_HEADER

# Names clients use in practice: the header names (any case), and a bare `token`.
_AUTHORIZATION = ("authorization", "Authorization")
_BARE_TOKEN = "token"  # noqa: S105 - a parameter's name, not a secret


def as_headers(params: Mapping[str, Any]) -> dict[str, str]:
    """The payload's credentials and context as the headers they stand for (text values only)."""
    by_name = {str(k).lower(): v for k, v in params.items() if isinstance(v, str)}
    headers: dict[str, str] = {}
    authorization = next((by_name[n.lower()] for n in _AUTHORIZATION if n.lower() in by_name), None)
    if authorization is None and _BARE_TOKEN in by_name:
        authorization = f"Bearer {by_name[_BARE_TOKEN]}"
    if authorization is not None:
        headers["Authorization"] = authorization
    for header in (PURPOSE_HEADER, ON_BEHALF_OF_HEADER):
        if header.lower() in by_name:
            headers[header] = by_name[header.lower()]
    return headers
