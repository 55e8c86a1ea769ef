"""The process-local room registry: which of this process's connections are in which room.

A room event reaches this process once (from the bus) and is handed, as frames encoded once per
transport, to every local member without awaiting any of them. Control messages (revoke, kick,
join a room, ...) reach the same members and are interpreted by each connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

from realtime.core import metrics
from realtime.protocol.base import Codec
from realtime.protocol.frames import Frame

logger = logging.getLogger(__name__)


class Member(Protocol):
    """What the hub (and the runtime's shutdown and reports) need of a connection."""

    socket_id: str
    codec_name: str

    @property
    def user_id(self) -> int: ...

    def room_frame(self, room: str, offset: int, epoch: str, frame: Frame, sender: int) -> None: ...

    def room_control(self, room: str, message: dict[str, Any]) -> None: ...

    def server_shutdown(self, reconnect_after_ms: int) -> None: ...

    async def flushed(self, limit_s: float) -> bool: ...


class Hub:
    """Room membership of this process's connections, and local fan-out."""

    def __init__(self, codecs: dict[str, Codec]) -> None:
        self._codecs = codecs
        self.rooms: dict[str, dict[str, Member]] = {}
        self.members: dict[str, Member] = {}

    def register(self, member: Member) -> None:
        self.members[member.socket_id] = member

    def unregister(self, member: Member, rooms: Iterable[str]) -> list[str]:
        """Forget ``member``, which is in ``rooms``; returns the rooms that now have no local
        member. (Only its own rooms are looked at: a process has thousands of rooms, and a
        storm of disconnects must not scan them all for each socket.)"""
        self.members.pop(member.socket_id, None)
        emptied = []
        for room in rooms:
            room_members = self.rooms.get(room)
            if room_members is None:
                continue
            if room_members.pop(member.socket_id, None) is not None and not room_members:
                del self.rooms[room]
                emptied.append(room)
        return emptied

    def join(self, room: str, member: Member) -> bool:
        """Add ``member`` to ``room``; True when the room had no local member before."""
        room_members = self.rooms.get(room)
        if room_members is None:
            self.rooms[room] = {member.socket_id: member}
            return True
        room_members[member.socket_id] = member
        return False

    def leave(self, room: str, member: Member) -> bool:
        """Remove ``member`` from ``room``; True when the room has no local member left."""
        room_members = self.rooms.get(room)
        if room_members is None or room_members.pop(member.socket_id, None) is None:
            return False
        if not room_members:
            del self.rooms[room]
            return True
        return False

    def local_members(self, room: str) -> Iterable[Member]:
        return tuple(self.rooms.get(room, {}).values())

    def room_counts(self) -> dict[str, int]:
        return {room: len(members) for room, members in self.rooms.items()}

    def deliver(
        self,
        room: str,
        offset: int,
        epoch: str,
        seq: int,
        event: str,
        data_json: str,
        *,
        exclude: str = "",
        sender: int = 0,
    ) -> int:
        """Hand one room event to every local member but ``exclude`` (a socket id).

        ``sender`` (a user id, 0 for none) lets each member drop events from users it blocks.
        Returns how many members it was handed to.
        """
        room_members = self.rooms.get(room)
        if not room_members:
            return 0
        started = time.perf_counter()
        frames: dict[str, Frame] = {}
        count = 0
        for member in tuple(room_members.values()):
            if member.socket_id == exclude:
                continue
            frame = frames.get(member.codec_name)
            if frame is None:
                codec = self._codecs[member.codec_name]
                frame = Frame(codec.room_event_frame(event, data_json, room, offset, epoch, seq))
                frames[member.codec_name] = frame
            try:
                member.room_frame(room, offset, epoch, frame, sender)
            except Exception:  # one broken member must not stop the room
                logger.exception("delivery to %s failed", member.socket_id)
            count += 1
        metrics.BROADCAST_FANOUT.observe(time.perf_counter() - started)
        metrics.OUT_ROOM.inc(count)
        return count

    def control(self, room: str, message: dict[str, Any]) -> None:
        for member in tuple(self.rooms.get(room, {}).values()):
            try:
                member.room_control(room, message)
            except Exception:
                logger.exception("control %s to %s failed", message.get("action"), member.socket_id)
