"""Operator actions, shared by the admin API, ``manage.py`` commands and Django admin actions.

All are sync (they run in views, commands and admin actions) and reach live connections on
every process through the broadcast module, after the database change commits.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import orjson
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from chat.services import mute_set
from realtime.core.constants import RESERVED_EVENT_PREFIXES, RESERVED_EVENTS
from realtime.fanout import broadcast, rooms
from realtime.models import Ban
from realtime.protocol.base import encode_data
from realtime.protocol.codecs import room_event_frame_bytes

EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}:[a-z][a-z0-9_]{0,63}$")
MAX_MINUTES = 60 * 24 * 365 * 10
MAX_REASON_CHARS = 500


class ModerationError(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def user_must_exist(user_id: int) -> None:
    """Raises ``USER_NOT_FOUND`` (404 in the admin API) for an unknown user id."""
    if not get_user_model().objects.filter(pk=user_id).exists():
        raise ModerationError("USER_NOT_FOUND", f"User {user_id} does not exist")


def event_name_problem(event: str) -> str | None:
    """Why ``event`` may not be sent by an operator (PROTOCOL.md §7), or None."""
    if not EVENT_NAME.match(event):
        return "The event must look like 'domain:name' (lowercase letters, digits, _)"
    if event in RESERVED_EVENTS or event.startswith(RESERVED_EVENT_PREFIXES):
        return f"'{event}' is reserved for the server"
    return None


def encoded_notification(*, user_ids: list[int], event: str, data: dict[str, Any]) -> str:
    """``data`` encoded once, as it will be sent; raises ``ModerationError`` when it cannot be
    encoded (orjson: nesting over 254 levels, integers over 64 bits) or when the frame of
    ``event`` to one of the users would exceed ``AETURNIS_MAX_OUTBOUND_FRAME_BYTES``."""
    try:
        data_json = encode_data(data)
    except orjson.JSONEncodeError as exc:
        raise ModerationError("INVALID_DATA", f"The data cannot be sent as JSON: {exc}") from None
    limit = int(settings.AETURNIS_MAX_OUTBOUND_FRAME_BYTES)
    longest_room = max((rooms.user_room(user_id) for user_id in user_ids), key=len, default="")
    size = room_event_frame_bytes(event, data_json, longest_room)
    if size > limit:
        raise ModerationError(
            "PAYLOAD_TOO_LARGE",
            f"The event would be a {size}-byte frame; the limit is {limit} bytes",
            {"size": size, "limit": limit},
        )
    return data_json


def notify_users(*, user_ids: list[int], event: str, data: dict[str, Any]) -> int:
    """Send ``event`` to every connection of each user; returns how many users.

    Refuses (``ModerationError``) a reserved or malformed event name and data that cannot be
    sent (``encoded_notification``): nothing is sent then.
    """
    problem = event_name_problem(event)
    if problem is not None:
        raise ModerationError("INVALID_EVENT", problem)
    unique = list(dict.fromkeys(user_ids))
    data_json = encoded_notification(user_ids=unique, event=event, data=data)
    for user_id in unique:
        broadcast.to_room_encoded_sync(rooms.user_room(user_id), event, data_json)
    return len(unique)


def _reason_must_fit(reason: str) -> None:
    # What the API and the admin allow; the commands take any string, and the reason goes to
    # every connection of the user in session:kicked.
    if len(reason) > MAX_REASON_CHARS:
        raise ModerationError(
            "INVALID_REASON", f"The reason may be at most {MAX_REASON_CHARS} characters"
        )


def kick_user(*, user_id: int, reason: str) -> None:
    """``session:kicked`` and close 4003 on every connection of the user, on every process."""
    _reason_must_fit(reason)
    user_must_exist(user_id)
    broadcast.control_sync_room(
        rooms.user_room(user_id), "kick", reason=reason or "Kicked by a moderator"
    )


def mute_user(*, user_id: int, minutes: float, reason: str, by_id: int | None) -> int:
    """Mute for ``minutes``; returns the end in ms (live connections learn it at once)."""
    user_must_exist(user_id)
    mute = mute_set(user_id=user_id, minutes=minutes, reason=reason, by_id=by_id)
    return int(mute.until.timestamp() * 1000)


@transaction.atomic
def ban_user(*, user_id: int, reason: str, minutes: float | None, by_id: int | None) -> Ban:
    """Refuse new connections (``USER_BANNED``) and end the live ones (4003)."""
    _reason_must_fit(reason)
    user_must_exist(user_id)
    until = timezone.now() + timedelta(minutes=minutes) if minutes else None
    ban = Ban.objects.create(user_id=user_id, reason=reason, until=until, created_by_id=by_id)
    message = reason or "Account is banned"
    transaction.on_commit(
        lambda: broadcast.control_sync_room(rooms.user_room(user_id), "ban", reason=message)
    )
    return ban


def unban_user(*, user_id: int, by_id: int | None) -> int:
    """Lift every active ban of the user; returns how many were lifted."""
    user_must_exist(user_id)
    return (
        Ban.objects.active()
        .filter(user_id=user_id)
        .update(lifted_at=timezone.now(), lifted_by_id=by_id)
    )
