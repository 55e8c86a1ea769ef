"""How room events and control messages travel between server processes.

``LocalBus`` (embedded default) keeps offsets and history in this process and delivers straight
to the hub. ``RedisBus`` uses the ``RedisPubSubChannelLayer``: each process has one router
channel that joins a room's group while the process has local members in it (one Redis
subscription per room per process). A room event is published by a Lua script that assigns the
room's next offset, appends the event to the room's bounded history and PUBLISHes it in the
layer's own message format, atomically, so every process sees a room's events in offset order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import msgpack
from channels.layers import get_channel_layer
from django.conf import settings

from realtime.core.clock import now_ms
from realtime.core.redis_client import async_redis, key, sync_redis
from realtime.fanout.history import HistoryEntry, Replay, replay_from
from realtime.fanout.hub import Hub
from realtime.fanout.rooms import group_name

logger = logging.getLogger(__name__)

EVENT_MESSAGE = "room.event"
CONTROL_MESSAGE = "room.control"
PROCESS_MESSAGE = "process.control"
# Every process's router channel is in this group: messages for processes, not connections
# (e.g. "the profanity list changed, reload it").
PROCESS_GROUP = "aeturnis.processes"

# What a process does with a process-level message (the runtime dispatches it by "action").
ProcessHandler = Callable[[dict[str, Any]], None]


OFFSET_KEY_TTL_S = 7 * 24 * 3600


class LocalBus:
    """One process, no Redis: offsets, history and delivery live here."""

    def __init__(self, hub: Hub, on_process_message: ProcessHandler) -> None:
        self.hub = hub
        self._on_process_message = on_process_message
        self._loop: asyncio.AbstractEventLoop | None = None
        self._offsets: dict[str, int] = {}
        self._history: dict[str, deque[HistoryEntry]] = {}

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        self._loop = None

    async def room_added(self, room: str) -> None:
        return None

    async def room_removed(self, room: str) -> None:
        return None

    def _publish_now(
        self, room: str, event: str, data_json: str, exclude: str = "", sender: int = 0
    ) -> int:
        offset = self._offsets.get(room, 0) + 1
        self._offsets[room] = offset
        history = self._history.get(room)
        if history is None:
            history = self._history[room] = deque(maxlen=settings.AETURNIS_HISTORY_SIZE)
        history.append(HistoryEntry(offset, now_ms(), event, data_json, exclude, sender))
        self.hub.deliver(room, offset, event, data_json, exclude=exclude, sender=sender)
        return offset

    async def publish(
        self, room: str, event: str, data_json: str, *, exclude: str = "", sender: int = 0
    ) -> int:
        return self._publish_now(room, event, data_json, exclude, sender)

    async def control(self, room: str, message: dict[str, Any]) -> None:
        self.hub.control(room, message)

    def publish_from_thread(self, room: str, event: str, data_json: str) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._publish_now, room, event, data_json, "", 0)

    def control_from_thread(self, room: str, message: dict[str, Any]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.hub.control, room, message)

    async def process_control(self, message: dict[str, Any]) -> None:
        self._on_process_message(message)

    def process_control_from_thread(self, message: dict[str, Any]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_process_message, message)

    async def replay(self, room: str, after: int) -> Replay:
        entries = list(self._history.get(room, ()))
        return replay_from(entries, self._offsets.get(room, 0), after, now_ms())

    async def current_offsets(self, rooms: list[str]) -> dict[str, int]:
        return {room: self._offsets.get(room, 0) for room in rooms}


_PUBLISH_LUA = """
local offset = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
local ts = tonumber(ARGV[5])
redis.call('RPUSH', KEYS[2],
  cmsgpack.pack({offset, ts, ARGV[2], ARGV[3], ARGV[9], tonumber(ARGV[10])}))
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[6]), -1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[8]))
redis.call('PUBLISH', ARGV[1], cmsgpack.pack({
  type = 'room.event', room = ARGV[4], offset = offset, event = ARGV[2], data = ARGV[3],
  exclude = ARGV[9], sender = tonumber(ARGV[10])}))
return offset
"""


def _layer_prefix() -> str:
    config = cast(dict[str, Any], settings.CHANNEL_LAYERS["default"]["CONFIG"])
    return str(config.get("prefix", "asgi"))


def layer_group_channel(room: str) -> str:
    """The Redis channel the pub/sub layer uses for a room's group (channels-redis naming)."""
    return f"{_layer_prefix()}__group__{group_name(room)}"


def _offset_key(room: str) -> str:
    return key("room", room, "offset")


def _history_key(room: str) -> str:
    return key("room", room, "history")


def _publish_args(
    room: str, event: str, data_json: str, exclude: str = "", sender: int = 0
) -> tuple[list[str], list[Any]]:
    keys = [_offset_key(room), _history_key(room)]
    args: list[Any] = [
        layer_group_channel(room),
        event,
        data_json,
        room,
        now_ms(),
        settings.AETURNIS_HISTORY_SIZE,
        OFFSET_KEY_TTL_S,
        max(1, int(settings.AETURNIS_HISTORY_TTL_S)),
        exclude,
        sender,
    ]
    return keys, args


def _control_payload(room: str, message: dict[str, Any]) -> dict[str, Any]:
    return {**message, "type": CONTROL_MESSAGE, "room": room}


class RedisBus:
    """Many processes sharing Redis through the channels-redis pub/sub layer."""

    def __init__(self, hub: Hub, on_process_message: ProcessHandler) -> None:
        self.hub = hub
        self._on_process_message = on_process_message
        self._layer: Any = get_channel_layer()
        self._channel: str | None = None
        self._router: asyncio.Task[None] | None = None
        self._script: Any = None

    async def start(self) -> None:
        self._channel = await self._layer.new_channel("router.")
        self._script = async_redis().register_script(_PUBLISH_LUA)
        await self._layer.group_add(PROCESS_GROUP, self._channel)
        self._router = asyncio.get_running_loop().create_task(self._route())

    async def stop(self) -> None:
        """Stop routing and close this loop's layer connections."""
        if self._router is not None:
            self._router.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._router
            self._router = None
        await self._layer.flush()

    async def room_added(self, room: str) -> None:
        assert self._channel is not None
        await self._layer.group_add(group_name(room), self._channel)

    async def room_removed(self, room: str) -> None:
        assert self._channel is not None
        await self._layer.group_discard(group_name(room), self._channel)

    async def publish(
        self, room: str, event: str, data_json: str, *, exclude: str = "", sender: int = 0
    ) -> int:
        keys, args = _publish_args(room, event, data_json, exclude, sender)
        return int(await self._script(keys=keys, args=args))

    async def control(self, room: str, message: dict[str, Any]) -> None:
        await self._layer.group_send(group_name(room), _control_payload(room, message))

    def publish_from_thread(self, room: str, event: str, data_json: str) -> None:
        publish_sync(room, event, data_json)

    async def process_control(self, message: dict[str, Any]) -> None:
        await self._layer.group_send(PROCESS_GROUP, {**message, "type": PROCESS_MESSAGE})

    def process_control_from_thread(self, message: dict[str, Any]) -> None:
        process_control_sync(message)

    def control_from_thread(self, room: str, message: dict[str, Any]) -> None:
        control_sync(room, message)

    async def replay(self, room: str, after: int) -> Replay:
        async with async_redis().pipeline(transaction=True) as pipe:
            pipe.get(_offset_key(room))
            pipe.lrange(_history_key(room), 0, -1)
            current_raw, raw_entries = await pipe.execute()
        entries = [HistoryEntry(*msgpack.unpackb(raw)) for raw in raw_entries]
        return replay_from(entries, int(current_raw or 0), after, now_ms())

    async def current_offsets(self, rooms: list[str]) -> dict[str, int]:
        if not rooms:
            return {}
        values = await async_redis().mget([_offset_key(room) for room in rooms])
        return {room: int(value or 0) for room, value in zip(rooms, values, strict=True)}

    async def _route(self) -> None:
        """Hand every message the layer receives for this process to the hub."""
        while True:
            try:
                message = await self._layer.receive(self._channel)
                kind = message.get("type")
                if kind == EVENT_MESSAGE:
                    self.hub.deliver(
                        message["room"],
                        int(message["offset"]),
                        message["event"],
                        message["data"],
                        exclude=message.get("exclude", ""),
                        sender=int(message.get("sender", 0)),
                    )
                elif kind == CONTROL_MESSAGE:
                    self.hub.control(message["room"], message)
                elif kind == PROCESS_MESSAGE:
                    self._on_process_message(message)
                else:
                    logger.warning("router: unexpected message type %r", kind)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("router: failed to handle a message")


def publish_sync(room: str, event: str, data_json: str) -> int:
    """Publish a room event from sync code (threads, management commands) through Redis."""
    keys, args = _publish_args(room, event, data_json)
    offset = cast(int, sync_redis().eval(_PUBLISH_LUA, len(keys), *keys, *args))
    return int(offset)


def process_control_sync(message: dict[str, Any]) -> None:
    """Tell every server process (through Redis) to do ``message["action"]``."""
    layer: Any = get_channel_layer()
    payload = layer.serialize({**message, "type": PROCESS_MESSAGE})
    sync_redis().publish(f"{_layer_prefix()}__group__{PROCESS_GROUP}", payload)


def control_sync(room: str, message: dict[str, Any]) -> None:
    layer: Any = get_channel_layer()
    payload = layer.serialize(_control_payload(room, message))
    sync_redis().publish(layer_group_channel(room), payload)
