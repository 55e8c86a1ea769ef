"""The one way to send an event to a room, from async handlers or from sync code.

Event data is encoded once here; the bus carries the encoded bytes to every process, and each
process splices them into each transport's framing once, not once per recipient.

Async code holds a ``Broadcast`` (the runtime builds one around its bus and passes it to whoever
sends). Sync callers (admin, DRF views, management commands, signal handlers) use the ``*_sync``
functions, normally through ``transaction.on_commit`` so nothing is sent for a transaction that
rolls back. With Redis they publish through it; without Redis they reach the bus of this
process, which ``Runtime.start`` registers with ``set_process_bus``.
"""

from __future__ import annotations

import logging
from typing import Any

from realtime.core.constants import ROOM_GLOBAL_EVENTS
from realtime.core.redis_client import redis_enabled
from realtime.fanout import rooms
from realtime.fanout.bus import (
    LocalBus,
    RedisBus,
    RoomEvent,
    control_sync,
    process_control_sync,
    publish_sync,
)
from realtime.fanout.history import HistoryEntry, Replay, RoomStream, StreamPosition
from realtime.protocol.base import encode_data

logger = logging.getLogger(__name__)

Bus = LocalBus | RedisBus


class Broadcast:
    """Room events, control messages and process messages of one process, through its bus."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def to_room(
        self, room: str, event: str, data: Any, *, exclude: str = "", sender: int = 0
    ) -> int:
        """Send ``event`` to every connection in ``room`` on every process; returns its offset.

        ``exclude`` is a socket id that does not receive it (the sender's own connection);
        ``sender`` is the user id that recipients who block that user filter out.
        """
        return await self._bus.publish(
            room, event, encode_data(data), exclude=exclude, sender=sender
        )

    async def to_rooms(self, events: list[tuple[str, str, Any, str]]) -> None:
        """Many events ``(room, event, data, exclude)`` in few round trips (shutdown)."""
        await self._bus.publish_many(
            [
                RoomEvent(room, event, encode_data(data), exclude)
                for room, event, data, exclude in events
            ]
        )

    async def to_user(self, user_id: int | str, event: str, data: Any) -> int:
        return await self.to_room(rooms.user_room(user_id), event, data)

    async def to_global_events(self, event: str, data: Any) -> int:
        return await self.to_room(ROOM_GLOBAL_EVENTS, event, data)

    async def control(self, room: str, action: str, /, **fields: Any) -> None:
        """Tell every connection in ``room`` on every process to do ``action`` (kick, ...)."""
        await self._bus.control(room, {"action": action, **fields})

    async def to_processes(self, action: str, **fields: Any) -> None:
        """Tell every server process (not its connections) to do ``action``."""
        await self._bus.process_control({"action": action, **fields})

    async def positions(self, room_names: list[str]) -> dict[str, StreamPosition]:
        """Each room's stream position now (offset 0 for a room that never had an event)."""
        return await self._bus.positions(room_names)

    async def replay(self, room: str, after: int, epoch: str | None = None) -> Replay:
        """What ``room`` published after offset ``after`` (of ``epoch``), if its history
        still covers it."""
        return await self._bus.replay(room, after, epoch)

    async def history(self, room: str) -> tuple[StreamPosition, list[HistoryEntry]]:
        """``room``'s position and the events its history still holds, oldest first."""
        return await self._bus.history(room)

    async def streams(self, room_names: list[str]) -> dict[str, RoomStream]:
        """Each room's position, last seq and history, all read at one instant (Socket.IO
        connection state recovery)."""
        return await self._bus.streams(room_names)


# The bus of this process's runtime, for sync senders without Redis (set by Runtime.start).
_process_bus: Bus | None = None


def set_process_bus(bus: Bus | None) -> None:
    global _process_bus
    _process_bus = bus


def to_room_sync(room: str, event: str, data: Any) -> None:
    """``Broadcast.to_room`` for sync code. Without Redis it reaches this process only."""
    to_room_encoded_sync(room, event, encode_data(data))


def to_room_encoded_sync(room: str, event: str, data_json: str) -> None:
    """``to_room_sync`` with the data already encoded (``encode_data``), e.g. to size it first
    or to send it to many rooms."""
    if redis_enabled():
        publish_sync(room, event, data_json)
        return
    bus = _process_bus
    if bus is None:
        logger.warning("no realtime runtime in this process: %s to %s not delivered", event, room)
        return
    bus.publish_from_thread(room, event, data_json)


def to_user_sync(user_id: int | str, event: str, data: Any) -> None:
    to_room_sync(rooms.user_room(user_id), event, data)


def control_sync_room(room: str, action: str, /, **fields: Any) -> None:
    """``Broadcast.control`` for sync code."""
    message = {"action": action, **fields}
    if redis_enabled():
        control_sync(room, message)
        return
    bus = _process_bus
    if bus is not None:
        bus.control_from_thread(room, message)


def to_processes_sync(action: str, **fields: Any) -> None:
    """``Broadcast.to_processes`` for sync code; without Redis it reaches this process only."""
    message = {"action": action, **fields}
    if redis_enabled():
        process_control_sync(message)
        return
    bus = _process_bus
    if bus is not None:
        bus.process_control_from_thread(message)


def reaches_other_processes() -> bool:
    """Whether sync sends from this process can reach server processes other than itself."""
    return redis_enabled()
