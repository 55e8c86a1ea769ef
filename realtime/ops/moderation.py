"""Operator actions, shared by the admin API, ``manage.py`` commands and Django admin actions.

All are sync (they run in views, commands and admin actions) and reach live connections on
every process through the broadcast module, after the database change commits.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from chat.services import mute_set
from realtime.core.constants import RESERVED_EVENT_PREFIXES, RESERVED_EVENTS
from realtime.fanout import broadcast, rooms
from realtime.models import Ban

EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}:[a-z][a-z0-9_]{0,63}$")
MAX_MINUTES = 60 * 24 * 365 * 10


class ModerationError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _user_must_exist(user_id: int) -> None:
    if not get_user_model().objects.filter(pk=user_id).exists():
        raise ModerationError("USER_NOT_FOUND", f"User {user_id} does not exist")


def event_name_problem(event: str) -> str | None:
    """Why ``event`` may not be sent by an operator (PROTOCOL.md §7), or None."""
    if not EVENT_NAME.match(event):
        return "The event must look like 'domain:name' (lowercase letters, digits, _)"
    if event in RESERVED_EVENTS or event.startswith(RESERVED_EVENT_PREFIXES):
        return f"'{event}' is reserved for the server"
    return None


def notify_users(*, user_ids: list[int], event: str, data: dict[str, Any]) -> int:
    """Send ``event`` to every connection of each user; returns how many users."""
    problem = event_name_problem(event)
    if problem is not None:
        raise ModerationError("INVALID_EVENT", problem)
    unique = list(dict.fromkeys(user_ids))
    for user_id in unique:
        broadcast.to_user_sync(user_id, event, data)
    return len(unique)


def kick_user(*, user_id: int, reason: str) -> None:
    """``session:kicked`` and close 4003 on every connection of the user, on every process."""
    _user_must_exist(user_id)
    broadcast.control_sync_room(
        rooms.user_room(user_id), "kick", reason=reason or "Kicked by a moderator"
    )


def mute_user(*, user_id: int, minutes: float, reason: str, by_id: int | None) -> int:
    """Mute for ``minutes``; returns the end in ms (live connections learn it at once)."""
    _user_must_exist(user_id)
    mute = mute_set(user_id=user_id, minutes=minutes, reason=reason, by_id=by_id)
    return int(mute.until.timestamp() * 1000)


@transaction.atomic
def ban_user(*, user_id: int, reason: str, minutes: float | None, by_id: int | None) -> Ban:
    """Refuse new connections (``USER_BANNED``) and end the live ones (4003)."""
    _user_must_exist(user_id)
    until = timezone.now() + timedelta(minutes=minutes) if minutes else None
    ban = Ban.objects.create(user_id=user_id, reason=reason, until=until, created_by_id=by_id)
    message = reason or "Account is banned"
    transaction.on_commit(
        lambda: broadcast.control_sync_room(rooms.user_room(user_id), "ban", reason=message)
    )
    return ban


def unban_user(*, user_id: int, by_id: int | None) -> int:
    """Lift every active ban of the user; returns how many were lifted."""
    _user_must_exist(user_id)
    return (
        Ban.objects.active()
        .filter(user_id=user_id)
        .update(lifted_at=timezone.now(), lifted_by_id=by_id)
    )
