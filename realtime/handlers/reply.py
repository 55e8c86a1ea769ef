"""What a handler returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer: the reply event (used when the request has no ack) and its data."""

    event: str | None
    data: dict[str, Any]
    # A small detail kept in the user's recent activity for moderators (PROTOCOL.md §5.5).
    activity: dict[str, Any] | None = None
