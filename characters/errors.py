"""Refusals of the domain apps, with the contract's stable codes (PROTOCOL.md §5).

``DomainError`` is the one base every domain app raises; the realtime dispatcher answers it as
the event's ``<domain>:error`` with ``code``, ``message`` and any ``extra`` fields.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A well-formed request that the game's rules refuse; ``code`` is the wire error code."""

    code = "INVALID_REQUEST"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class CharacterError(DomainError):
    pass


class CharacterNotFound(CharacterError):
    code = "CHARACTER_NOT_FOUND"


class CharacterAccessDenied(CharacterError):
    code = "ACCESS_DENIED"


class ZoneNotFound(CharacterError):
    code = "ZONE_NOT_FOUND"


class ZoneNotAdjacent(CharacterError):
    code = "ZONE_NOT_ADJACENT"
