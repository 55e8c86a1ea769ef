"""Stable error codes (PROTOCOL.md §2, §5) and the exception handlers raise to refuse a request."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    # Handshake (§2)
    AUTH_REQUIRED = "AUTH_REQUIRED"
    TOKEN_INVALID = "TOKEN_INVALID"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_REVOKED = "TOKEN_REVOKED"
    USER_BANNED = "USER_BANNED"
    AUTH_RATE_LIMITED = "AUTH_RATE_LIMITED"
    CONNECTION_RATE_LIMITED = "CONNECTION_RATE_LIMITED"
    # Routing (§5.1)
    BAD_FRAME = "BAD_FRAME"
    UNKNOWN_EVENT = "UNKNOWN_EVENT"
    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # Resume (§8) and presence (§5.5)
    INVALID_REQUEST = "INVALID_REQUEST"
    # A dependency is briefly unavailable (§2, §8a)
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    # Characters (§5.2)
    NO_CHARACTER = "NO_CHARACTER"
    CHARACTER_NOT_FOUND = "CHARACTER_NOT_FOUND"
    ACCESS_DENIED = "ACCESS_DENIED"
    INVALID_MOVEMENT = "INVALID_MOVEMENT"
    INVALID_MOVEMENT_SPEED = "INVALID_MOVEMENT_SPEED"
    ZONE_NOT_FOUND = "ZONE_NOT_FOUND"
    ZONE_NOT_ADJACENT = "ZONE_NOT_ADJACENT"
    IN_COMBAT = "IN_COMBAT"
    INVALID_ACTION = "INVALID_ACTION"
    ACTION_ON_COOLDOWN = "ACTION_ON_COOLDOWN"
    INVALID_STATUS = "INVALID_STATUS"
    # Chat (§5.3)
    INVALID_MESSAGE = "INVALID_MESSAGE"
    CONTENT_BLOCKED = "CONTENT_BLOCKED"
    NOT_IN_GUILD = "NOT_IN_GUILD"
    MUTED = "MUTED"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    USER_OFFLINE = "USER_OFFLINE"
    USER_BLOCKED = "USER_BLOCKED"
    INVALID_EMOTE = "INVALID_EMOTE"
    # Combat (§5.4)
    ALREADY_IN_COMBAT = "ALREADY_IN_COMBAT"
    MONSTER_NOT_FOUND = "MONSTER_NOT_FOUND"
    TARGET_NOT_FOUND = "TARGET_NOT_FOUND"
    TARGET_NOT_IN_ZONE = "TARGET_NOT_IN_ZONE"
    CHALLENGE_NOT_FOUND = "CHALLENGE_NOT_FOUND"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    NOT_IN_COMBAT = "NOT_IN_COMBAT"
    NOT_YOUR_TURN = "NOT_YOUR_TURN"
    INVALID_TARGET = "INVALID_TARGET"


HANDSHAKE_MESSAGES: dict[str, str] = {
    ErrorCode.AUTH_REQUIRED: "Authentication required",
    ErrorCode.TOKEN_INVALID: "Invalid token",
    ErrorCode.TOKEN_EXPIRED: "Token expired",
    ErrorCode.TOKEN_REVOKED: "Token has been revoked",
    ErrorCode.USER_BANNED: "Account is banned",
    ErrorCode.AUTH_RATE_LIMITED: "Too many failed authentication attempts",
    ErrorCode.CONNECTION_RATE_LIMITED: "Connection rate limit exceeded",
    ErrorCode.SERVICE_UNAVAILABLE: "Service temporarily unavailable",
}


class Reject(Exception):
    """Refuse a well-formed request: the client gets ``code`` and ``message`` (plus ``extra``).

    Handlers raise it; the dispatcher turns it into an ack error or a ``<domain>:error`` event.
    """

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = str(code)
        self.message = message
        self.extra = extra


class ServiceUnavailable(Exception):
    """A dependency (``redis``, ``database``) the request needs is unavailable right now.

    The dispatcher answers it as the event's ``<domain>:error`` ``SERVICE_UNAVAILABLE`` with
    ``retryAfter`` (PROTOCOL.md §8a), without a traceback in the log.
    """

    code = ErrorCode.SERVICE_UNAVAILABLE.value
    message = "Service temporarily unavailable"

    def __init__(self, dependency: str, retry_after: int) -> None:
        super().__init__(f"{dependency} unavailable")
        self.dependency = dependency
        self.retry_after = retry_after

    @property
    def extra(self) -> dict[str, Any]:
        return {"retryAfter": self.retry_after}
