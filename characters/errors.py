"""Refusals of the characters domain, with the contract's stable codes (PROTOCOL.md §5.2)."""

from __future__ import annotations


class CharacterError(Exception):
    """A well-formed request that the world's rules refuse; ``code`` is the wire error code."""

    code = "INVALID_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CharacterNotFound(CharacterError):
    code = "CHARACTER_NOT_FOUND"


class CharacterAccessDenied(CharacterError):
    code = "ACCESS_DENIED"


class ZoneNotFound(CharacterError):
    code = "ZONE_NOT_FOUND"


class ZoneNotAdjacent(CharacterError):
    code = "ZONE_NOT_ADJACENT"
