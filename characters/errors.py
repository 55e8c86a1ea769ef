"""Refusals of the character rules and services, with the contract's codes (PROTOCOL.md §5.2)."""

from __future__ import annotations

from domain.errors import DomainError


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
