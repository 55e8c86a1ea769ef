"""Room names on the wire (PROTOCOL.md §4)."""

from __future__ import annotations

from realtime.core.constants import (
    ROOM_CHARACTER,
    ROOM_COMBAT,
    ROOM_GLOBAL_CHAT,
    ROOM_GLOBAL_EVENTS,
    ROOM_GUILD,
    ROOM_USER,
    ROOM_ZONE,
)


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
_SHARDED_PREFIXES = (f"{ROOM_USER}:", f"{ROOM_CHARACTER}:")


def is_sharded(room: str) -> bool:
    """Rooms of one account or one character: many, small and joined at every connect, so
    processes do not subscribe to them one by one (see ``realtime.fanout.bus``)."""
    return room.startswith(_SHARDED_PREFIXES)
