"""The one way to send an event to a room, from async handlers or from sync code.

Event data is encoded once here; the bus carries the encoded bytes to every process, and each
process splices them into each transport's framing once, not once per recipient.
Sync callers (admin, DRF views, management commands, services' returned events) use the
``*_sync`` functions, normally through ``transaction.on_commit`` so nothing is sent for a
transaction that rolls back.
"""

from __future__ import annotations

import logging
from typing import Any

from realtime import rooms
from realtime.bus import control_sync, process_control_sync, publish_sync
from realtime.constants import ROOM_GLOBAL_CHAT, ROOM_GLOBAL_EVENTS
from realtime.protocol.base import encode_data
from realtime.redis_client import redis_enabled
from realtime.runtime import current_runtime, get_runtime

logger = logging.getLogger(__name__)


async def to_room(room: str, event: str, data: Any, *, exclude: str = "", sender: int = 0) -> int:
    """Send ``event`` to every connection in ``room`` on every process; returns its offset.

    ``exclude`` is a socket id that does not receive it (the sender's own connection);
    ``sender`` is the user id that recipients who block that user filter out.
    """
    runtime = await get_runtime()
    return await runtime.bus.publish(room, event, encode_data(data), exclude=exclude, sender=sender)


async def to_user(user_id: int | str, event: str, data: Any) -> int:
    return await to_room(rooms.user_room(user_id), event, data)


async def to_global_events(event: str, data: Any) -> int:
    return await to_room(ROOM_GLOBAL_EVENTS, event, data)


async def to_global_chat(event: str, data: Any, *, exclude: str = "", sender: int = 0) -> int:
    return await to_room(ROOM_GLOBAL_CHAT, event, data, exclude=exclude, sender=sender)


async def control(room: str, action: str, /, **fields: Any) -> None:
    """Tell every connection in ``room`` on every process to do ``action`` (revoke, kick, ...)."""
    runtime = await get_runtime()
    await runtime.bus.control(room, {"action": action, **fields})


def to_room_sync(room: str, event: str, data: Any) -> None:
    """``to_room`` for sync code. Without Redis it reaches this process's connections only."""
    data_json = encode_data(data)
    if redis_enabled():
        publish_sync(room, event, data_json)
        return
    runtime = current_runtime()
    if runtime is None:
        logger.warning("no realtime runtime in this process: %s to %s not delivered", event, room)
        return
    runtime.bus.publish_from_thread(room, event, data_json)


def to_user_sync(user_id: int | str, event: str, data: Any) -> None:
    to_room_sync(rooms.user_room(user_id), event, data)


def control_sync_room(room: str, action: str, /, **fields: Any) -> None:
    """``control`` for sync code."""
    message = {"action": action, **fields}
    if redis_enabled():
        control_sync(room, message)
        return
    runtime = current_runtime()
    if runtime is not None:
        runtime.bus.control_from_thread(room, message)


async def to_processes(action: str, **fields: Any) -> None:
    """Tell every server process (not its connections) to do ``action``."""
    runtime = await get_runtime()
    await runtime.bus.process_control({"action": action, **fields})


def to_processes_sync(action: str, **fields: Any) -> None:
    """``to_processes`` for sync code; without Redis it reaches this process only."""
    message = {"action": action, **fields}
    if redis_enabled():
        process_control_sync(message)
        return
    runtime = current_runtime()
    if runtime is not None:
        runtime.bus.process_control_from_thread(message)


def reaches_other_processes() -> bool:
    """Whether sync sends from this process can reach server processes other than itself."""
    return redis_enabled()
