"""Room names on the wire and the channel-layer group names derived from them (PROTOCOL.md §4).

Channel-layer group names allow only ASCII letters, digits, ``-``, ``_`` and ``.`` and must be
shorter than 100 characters, so ``zone:starting_village`` becomes ``room.zone.starting_village``.
"""

from __future__ import annotations

import hashlib
import re

from realtime.core.constants import (
    ROOM_CHARACTER,
    ROOM_COMBAT,
    ROOM_GLOBAL_CHAT,
    ROOM_GLOBAL_EVENTS,
    ROOM_GUILD,
    ROOM_USER,
    ROOM_ZONE,
)

_GROUP_SAFE = re.compile(r"[^A-Za-z0-9_\-.]")
_MAX_GROUP_LENGTH = 99


def user_room(user_id: int | str) -> str:
    return f"{ROOM_USER}:{user_id}"


def character_room(character_id: int | str) -> str:
    return f"{ROOM_CHARACTER}:{character_id}"


def zone_room(zone_key: str) -> str:
    return f"{ROOM_ZONE}:{zone_key}"


def guild_room(guild_id: int | str) -> str:
    return f"{ROOM_GUILD}:{guild_id}"


def combat_room(session_id: int | str) -> str:
    return f"{ROOM_COMBAT}:{session_id}"


GLOBAL_ROOMS = (ROOM_GLOBAL_CHAT, ROOM_GLOBAL_EVENTS)


def group_name(room: str) -> str:
    """Map a wire room name to a valid channel-layer group name (stable and collision-free)."""
    safe = _GROUP_SAFE.sub("_", room.replace(":", "."))
    candidate = f"room.{safe}"
    if safe == room.replace(":", ".") and len(candidate) <= _MAX_GROUP_LENGTH:
        return candidate
    # Characters had to be replaced, or the name is too long: add a digest so that two rooms
    # that differ only in replaced characters never share a group.
    digest = hashlib.blake2b(room.encode(), digest_size=8).hexdigest()
    return f"room.{safe[: _MAX_GROUP_LENGTH - 22]}.{digest}"
