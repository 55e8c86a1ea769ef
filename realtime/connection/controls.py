"""Control messages: what a connection does when told so through its rooms, on any process.

Revocation, kicks and bans, joining or leaving a room, following its character into another
zone or guild, and the account's chat state (its block list and a mute).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from realtime.auth.tokens import TokenInfo
from realtime.core.constants import CloseReason
from realtime.core.errors import ErrorCode
from realtime.fanout import rooms as room_names
from realtime.runtime.runtime import Runtime
from realtime.state.playing import Playing
from realtime.state.presence.service import Connection

logger = logging.getLogger(__name__)


class Session(Connection, Protocol):
    """What a control message acts on (``realtime.connection.session.Session``)."""

    runtime: Runtime
    token: TokenInfo | None
    playing: Playing | None
    closed: bool
    blocked_user_ids: frozenset[int]
    muted_until_ms: int

    def end_auth(self, code: ErrorCode) -> None: ...

    def kick(self, reason: str, close_reason: str = ...) -> None: ...

    async def join(self, room: str) -> None: ...

    async def leave(self, room: str) -> None: ...


def _control_revoke(session: Session, message: dict[str, Any]) -> None:
    if session.token is not None and session.token.jti == message.get("jti"):
        session.end_auth(ErrorCode.TOKEN_REVOKED)


def _control_kick(session: Session, message: dict[str, Any]) -> None:
    session.kick(str(message.get("reason") or "Kicked by a moderator"))


def _control_ban(session: Session, message: dict[str, Any]) -> None:
    session.kick(str(message.get("reason") or "Account is banned"), CloseReason.USER_BANNED)


# A control message's own "room" is the room it was sent to, so join/leave name theirs "to".
def _control_join(session: Session, message: dict[str, Any]) -> None:
    room = message.get("to")
    if isinstance(room, str) and not session.closed:
        asyncio.get_running_loop().create_task(session.join(room))


def _control_leave(session: Session, message: dict[str, Any]) -> None:
    room = message.get("to")
    if isinstance(room, str):
        asyncio.get_running_loop().create_task(session.leave(room))


def _control_enter_zone(session: Session, message: dict[str, Any]) -> None:
    """Another connection moved this connection's character to a new zone: follow it."""
    playing, zone = session.playing, message.get("zone")
    if playing is None or session.closed or playing.character_id != message.get("characterId"):
        return
    if not isinstance(zone, dict) or zone.get("key") == playing.zone:
        return
    asyncio.get_running_loop().create_task(_follow_zone(session, zone))


async def _follow_zone(session: Session, zone: dict[str, Any]) -> None:
    playing = session.playing
    if playing is None:
        return
    old = playing.zone
    if not playing.follow(zone):
        logger.warning("malformed enter_zone control: %r", zone)
        return
    await session.leave(room_names.zone_room(old))
    await session.join(room_names.zone_room(playing.zone))
    await session.runtime.presence.playing_changed(session)


def _control_guild(session: Session, message: dict[str, Any]) -> None:
    """The played character joined or left a guild: follow it into the guild room."""
    playing = session.playing
    if playing is None or session.closed or playing.character_id != message.get("characterId"):
        return
    guild_id = message.get("guildId")
    if guild_id is not None and not isinstance(guild_id, int):
        return
    asyncio.get_running_loop().create_task(_follow_guild(session, guild_id))


async def _follow_guild(session: Session, guild_id: int | None) -> None:
    playing = session.playing
    if playing is None or playing.guild_id == guild_id:
        return
    if playing.guild_id is not None:
        await session.leave(room_names.guild_room(playing.guild_id))
    playing.guild_id = guild_id
    if guild_id is not None:
        await session.join(room_names.guild_room(guild_id))
    await session.runtime.presence.playing_changed(session)


def _control_blocks(session: Session, message: dict[str, Any]) -> None:
    """The account changed its block list (on any connection): adopt it."""
    ids = message.get("userIds")
    if isinstance(ids, list) and all(isinstance(i, int) for i in ids):
        session.blocked_user_ids = frozenset(ids)


def _control_mute(session: Session, message: dict[str, Any]) -> None:
    """A moderator muted the account (or lifted the mute): ``until`` in ms, 0 for none."""
    until = message.get("until")
    if isinstance(until, int):
        session.muted_until_ms = until


CONTROL_ACTIONS: dict[str, Callable[[Session, dict[str, Any]], None]] = {
    "revoke": _control_revoke,
    "kick": _control_kick,
    "ban": _control_ban,
    "join": _control_join,
    "leave": _control_leave,
    "enter_zone": _control_enter_zone,
    "guild": _control_guild,
    "blocks": _control_blocks,
    "mute": _control_mute,
}
