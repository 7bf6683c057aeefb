"""Domain errors with stable codes: what a client can branch on, never a stack trace."""

from __future__ import annotations

from typing import ClassVar


class HubError(Exception):
    code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def extensions(self) -> dict[str, str]:
        extensions = {"code": self.code}
        if self.field is not None:
            extensions["field"] = self.field
        return extensions


class InvalidInput(HubError):
    code = "INVALID_INPUT"


class NotFound(HubError):
    code = "NOT_FOUND"


class Conflict(HubError):
    code = "CONFLICT"


class Unauthenticated(HubError):
    code = "UNAUTHENTICATED"


class Forbidden(HubError):
    code = "FORBIDDEN"


class ServiceUnavailable(HubError):
    """The database is briefly out of reach: HTTP 503, retry after `Retry-After`."""

    code = "SERVICE_UNAVAILABLE"


class RateLimited(HubError):
    """Over the client's rate or in-flight limit: HTTP 429, retry after `Retry-After`."""

    code = "RATE_LIMITED"
