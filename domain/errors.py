"""Refusals of the domain apps, with the contract's stable codes (PROTOCOL.md §5).

``DomainError`` is the one base every domain app (characters, chat, combat) raises; the realtime
dispatcher answers it as the event's ``<domain>:error`` with ``code``, ``message`` and any
``extra`` fields. It lives here, outside every app, so that no app imports another just to raise.
Pure: no Django.
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
