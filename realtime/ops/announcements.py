"""System announcements to every connected client (PROTOCOL.md §5.1).

Every announcement sent is recorded as an ``Announcement`` row, whoever sent it (the admin, the
API, ``manage.py announce``), so moderators find them all in the admin's list.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from realtime.core.clock import now_ms
from realtime.core.constants import ROOM_GLOBAL_EVENTS
from realtime.fanout import broadcast
from realtime.models import Announcement

MAX_ANNOUNCEMENT_LENGTH = 500


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


def announcement_payload(message: str, priority: Priority) -> dict[str, Any]:
    return {
        "message": message,
        "priority": priority.value,
        "type": "announcement",
        "timestamp": now_ms(),
    }


def validate_announcement(message: str) -> str:
    """Trimmed text of 1-500 characters; raises ``ValueError`` otherwise."""
    text = message.strip()
    if not text:
        raise ValueError("The announcement is empty")
    if len(text) > MAX_ANNOUNCEMENT_LENGTH:
        raise ValueError(f"The announcement is longer than {MAX_ANNOUNCEMENT_LENGTH} characters")
    return text


def announce_sync(message: str, priority: Priority = Priority.MEDIUM) -> dict[str, Any]:
    """Send ``system:announcement`` to ``global:events`` from sync code; returns the payload."""
    payload = announcement_payload(validate_announcement(message), priority)
    broadcast.to_room_sync(ROOM_GLOBAL_EVENTS, "system:announcement", payload)
    return payload


def announcement_send(
    message: str, priority: Priority = Priority.MEDIUM, *, sent_by_id: int | None
) -> dict[str, Any]:
    """Record the announcement, then send it; returns the payload sent.

    Raises ``ValueError`` (and records nothing) when the text is empty or too long. The admin,
    which saves its own row, calls ``announce_sync`` instead, so nothing is recorded twice.
    """
    text = validate_announcement(message)
    Announcement.objects.create(message=text, priority=priority.value, sent_by_id=sent_by_id)
    return announce_sync(text, priority)
