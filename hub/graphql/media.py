"""GraphQL over HTTP media types: answer `application/graphql-response+json` when it is preferred.

With that media type the spec asks a request error (parse, validation, variable coercion: nothing
was executed) to be a 400 with no `data` entry. Clients asking for `application/json` keep the
classic 200 responses.
"""

from __future__ import annotations

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"


def _ranks(accept: str) -> dict[str, tuple[float, int]]:
    """Each media type's (q, -position): higher sorts first, earlier wins a tie."""
    ranks: dict[str, tuple[float, int]] = {}
    for position, part in enumerate(accept.split(",")):
        media, *parameters = (p.strip() for p in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            if parameter.startswith("q="):
                try:
                    quality = float(parameter[2:])
                except ValueError:
                    quality = 0.0
        ranks.setdefault(media.lower(), (quality, -position))
    return ranks


def prefers_graphql_response_json(accept: str) -> bool:
    ranks = _ranks(accept)
    graphql = ranks.get(GRAPHQL_RESPONSE_JSON)
    if graphql is None or graphql[0] <= 0:
        return False
    json = ranks.get(JSON)
    return json is None or graphql >= json
