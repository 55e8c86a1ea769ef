"""How room events and control messages travel between server processes.

``LocalBus`` (embedded default) keeps streams in this process and delivers straight to the
hub. ``RedisBus`` publishes through Redis: one Lua script per room event assigns the room's
next offset (in the room's epoch) and the bus-wide ``seq``, appends the event to the room's
bounded history and PUBLISHes it, atomically, so every process sees every room's events in
order. Each process holds one subscriber connection: it listens to the channel of every room
that has a local member, to a few shard channels that carry all ``user:*`` and
``character:*`` rooms (joined at every connect: subscribing per connection would cost a round
trip each), and to the process channel.

Redis going away is expected: the subscriber notices (a failed read, or no answer to its
idle ``PING``), reports it once (``realtime.core.health.REDIS``), reconnects with backoff and
subscribes again, then tells the runtime (``on_reconnect``) so what was lost can be rebuilt.
Publishing while Redis is down fails at once with ``ServiceUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import msgpack
import redis.asyncio as aioredis
from django.conf import settings

from realtime.core.clock import now_ms
from realtime.core.health import REDIS
from realtime.core.loops import cancelling
from realtime.core.redis_client import (
    REDIS_ERRORS,
    async_options,
    async_redis,
    key,
    script,
    sync_redis,
)
from realtime.fanout.history import (
    HistoryEntry,
    Replay,
    RoomStream,
    StreamPosition,
    new_epoch,
    replay_from,
    seq_base,
)
from realtime.fanout.hub import Hub
from realtime.fanout.rooms import is_sharded

logger = logging.getLogger(__name__)

EVENT, CONTROL, PROCESS = "e", "c", "p"

# What a process does with a process-level message (the runtime dispatches it by "action").
ProcessHandler = Callable[[dict[str, Any]], None]
ReconnectHandler = Callable[[], Awaitable[None]]

# Channels that carry every user:* and character:* room between processes.
SHARDS = 16
OFFSET_KEY_TTL_S = 7 * 24 * 3600
# The subscriber pings Redis after this long without traffic, and gives the connection up when
# a ping is not answered within PONG_TIMEOUT_S.
IDLE_PING_S = 1.0
PONG_TIMEOUT_S = 3.0
RECONNECT_BACKOFF_S = (0.1, 0.25, 0.5, 1.0)
PUBLISH_BATCH = 500


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """One event to publish (encoded once, like every room event)."""

    room: str
    event: str
    data_json: str
    exclude: str = ""
    sender: int = 0


class LocalBus:
    """One process, no Redis: streams, history and delivery live here."""

    def __init__(self, hub: Hub, on_process_message: ProcessHandler) -> None:
        self.hub = hub
        self._on_process_message = on_process_message
        self._loop: asyncio.AbstractEventLoop | None = None
        # One epoch per process: a restart loses every stream's history.
        self.epoch = new_epoch()
        self._offsets: dict[str, int] = {}
        self._seq = seq_base()
        self._last_seq: dict[str, int] = {}
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
        self._seq += 1
        self._last_seq[room] = self._seq
        history = self._history.get(room)
        if history is None:
            history = self._history[room] = deque(maxlen=settings.AETURNIS_HISTORY_SIZE)
        history.append(HistoryEntry(offset, now_ms(), event, data_json, exclude, sender, self._seq))
        self.hub.deliver(
            room, offset, self.epoch, self._seq, event, data_json, exclude=exclude, sender=sender
        )
        return offset

    async def publish(
        self, room: str, event: str, data_json: str, *, exclude: str = "", sender: int = 0
    ) -> int:
        return self._publish_now(room, event, data_json, exclude, sender)

    async def publish_many(self, events: list[RoomEvent]) -> None:
        for e in events:
            self._publish_now(e.room, e.event, e.data_json, e.exclude, e.sender)

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

    def _position(self, room: str) -> StreamPosition:
        return StreamPosition(self._offsets.get(room, 0), self.epoch)

    async def replay(self, room: str, after: int, epoch: str | None = None) -> Replay:
        entries = list(self._history.get(room, ()))
        return replay_from(entries, self._position(room), after, now_ms(), epoch)

    async def history(self, room: str) -> tuple[StreamPosition, list[HistoryEntry]]:
        return self._position(room), list(self._history.get(room, ()))

    async def streams(self, rooms: list[str]) -> dict[str, RoomStream]:
        return {
            room: RoomStream(
                self._position(room),
                self._last_seq.get(room, 0),
                list(self._history.get(room, ())),
            )
            for room in rooms
        }

    async def positions(self, rooms: list[str]) -> dict[str, StreamPosition]:
        return {room: self._position(room) for room in rooms}


# The bus-wide seq starts at the microseconds of Redis's clock when its key is (re)created, so
# it keeps growing across a Redis that lost its data (a Socket.IO recovery offset of before the
# loss is never mistaken for one after it). The room's meta hash keeps its last seq ('s').
_PUBLISH_LUA = """
local offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('HSETNX', KEYS[1], 'e', ARGV[11])
local epoch = redis.call('HGET', KEYS[1], 'e')
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
local seq = redis.call('INCR', KEYS[3])
if seq == 1 then
  local t = redis.call('TIME')
  seq = redis.call('INCRBY', KEYS[3], t[1] .. string.format('%06d', tonumber(t[2])))
end
redis.call('HSET', KEYS[1], 's', seq)
local ts = tonumber(ARGV[5])
local sender = tonumber(ARGV[10])
redis.call('RPUSH', KEYS[2],
  cmsgpack.pack({offset, ts, ARGV[2], ARGV[3], ARGV[9], sender, seq}))
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[6]), -1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[8]))
redis.call('PUBLISH', ARGV[1],
  cmsgpack.pack({'e', ARGV[4], offset, epoch, seq, ARGV[2], ARGV[3], ARGV[9], sender}))
return {offset, epoch, seq}
"""

# Each room's position, giving a room without one its epoch now (so that an offset a client
# got before the room's first event is already in an epoch).
_POSITIONS_LUA = """
local ttl = tonumber(ARGV[#ARGV])
local out = {}
for i, name in ipairs(KEYS) do
  redis.call('HSETNX', name, 'e', ARGV[i])
  redis.call('EXPIRE', name, ttl)
  local v = redis.call('HMGET', name, 'o', 'e')
  out[i] = {tonumber(v[1]) or 0, v[2]}
end
return out
"""

_REPLAY_LUA = """
redis.call('HSETNX', KEYS[1], 'e', ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
local v = redis.call('HMGET', KEYS[1], 'o', 'e')
return {tonumber(v[1]) or 0, v[2], redis.call('LRANGE', KEYS[2], 0, -1)}
"""

# Several rooms' streams at one instant (KEYS: meta and history of each room in turn): their
# positions, last seqs and histories, so that every event after the read has a higher seq than
# every event it returned.
_STREAMS_LUA = """
local ttl = tonumber(ARGV[#ARGV])
local out = {}
for i = 1, #KEYS, 2 do
  local room = (i + 1) / 2
  redis.call('HSETNX', KEYS[i], 'e', ARGV[room])
  redis.call('EXPIRE', KEYS[i], ttl)
  local v = redis.call('HMGET', KEYS[i], 'o', 'e', 's')
  out[room] = {tonumber(v[1]) or 0, v[2], tonumber(v[3]) or 0,
    redis.call('LRANGE', KEYS[i + 1], 0, -1)}
end
return out
"""


def _meta_key(room: str) -> str:
    return key("room", room, "meta")


def _history_key(room: str) -> str:
    return key("room", room, "history")


def _seq_key() -> str:
    return key("seq")


def room_channel(room: str) -> str:
    """The Redis channel that carries ``room``'s events and control messages."""
    if is_sharded(room):
        return key("ch", f"#{zlib.crc32(room.encode()) % SHARDS}")
    return key("ch", room)


def shard_channels() -> list[str]:
    return [key("ch", f"#{shard}") for shard in range(SHARDS)]


def process_channel() -> str:
    return key("ch", "processes")


def _publish_args(
    room: str, event: str, data_json: str, exclude: str = "", sender: int = 0
) -> tuple[list[str], list[Any]]:
    keys = [_meta_key(room), _history_key(room), _seq_key()]
    args: list[Any] = [
        room_channel(room),
        event,
        data_json,
        room,
        now_ms(),
        settings.AETURNIS_HISTORY_SIZE,
        OFFSET_KEY_TTL_S,
        max(1, int(settings.AETURNIS_HISTORY_TTL_S)),
        exclude,
        sender,
        new_epoch(),
    ]
    return keys, args


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(raw: bytes) -> HistoryEntry:
    offset, ts, event, data_json, exclude, sender, seq = msgpack.unpackb(raw, raw=False)
    return HistoryEntry(offset, ts, event, data_json, exclude, sender, seq)


class RedisBus:
    """Many processes sharing Redis (see the module docstring)."""

    def __init__(self, hub: Hub, on_process_message: ProcessHandler) -> None:
        self.hub = hub
        self._on_process_message = on_process_message
        self.on_reconnect: ReconnectHandler | None = None
        self._publish: Any = None
        self._positions: Any = None
        self._replay: Any = None
        self._streams: Any = None
        self._subscriber: _Subscriber | None = None

    async def start(self) -> None:
        self._publish = script(_PUBLISH_LUA)
        self._positions = script(_POSITIONS_LUA)
        self._replay = script(_REPLAY_LUA)
        self._streams = script(_STREAMS_LUA)
        self._subscriber = _Subscriber(self)
        await self._subscriber.start()

    async def stop(self) -> None:
        if self._subscriber is not None:
            await self._subscriber.stop()
            self._subscriber = None

    async def room_added(self, room: str) -> None:
        if not is_sharded(room) and self._subscriber is not None:
            await self._subscriber.subscribe(room_channel(room))

    async def room_removed(self, room: str) -> None:
        if not is_sharded(room) and self._subscriber is not None:
            await self._subscriber.unsubscribe(room_channel(room))

    async def _call(self, what: str, call: Awaitable[Any]) -> Any:
        """Await a Redis call; an unreachable Redis becomes ``ServiceUnavailable``."""
        try:
            return await call
        except REDIS_ERRORS as exc:
            raise REDIS.failed(what, exc) from None

    async def publish(
        self, room: str, event: str, data_json: str, *, exclude: str = "", sender: int = 0
    ) -> int:
        REDIS.check()
        keys, args = _publish_args(room, event, data_json, exclude, sender)
        offset, _epoch, _seq = await self._call("bus", self._publish(keys=keys, args=args))
        return int(offset)

    async def publish_many(self, events: list[RoomEvent]) -> None:
        """Publish many events in few round trips (graceful shutdown's announcements)."""
        REDIS.check()
        client = async_redis()
        for start in range(0, len(events), PUBLISH_BATCH):
            async with client.pipeline(transaction=False) as pipe:
                for e in events[start : start + PUBLISH_BATCH]:
                    keys, args = _publish_args(e.room, e.event, e.data_json, e.exclude, e.sender)
                    await self._publish(keys=keys, args=args, client=pipe)
                await self._call("bus", pipe.execute())

    async def control(self, room: str, message: dict[str, Any]) -> None:
        REDIS.check()
        payload = msgpack.packb([CONTROL, room, message])
        await self._call("bus", async_redis().publish(room_channel(room), payload))

    def publish_from_thread(self, room: str, event: str, data_json: str) -> None:
        publish_sync(room, event, data_json)

    async def process_control(self, message: dict[str, Any]) -> None:
        REDIS.check()
        payload = msgpack.packb([PROCESS, message])
        await self._call("bus", async_redis().publish(process_channel(), payload))

    def process_control_from_thread(self, message: dict[str, Any]) -> None:
        process_control_sync(message)

    def control_from_thread(self, room: str, message: dict[str, Any]) -> None:
        control_sync(room, message)

    async def replay(self, room: str, after: int, epoch: str | None = None) -> Replay:
        position, entries = await self.history(room)
        return replay_from(entries, position, after, now_ms(), epoch)

    async def history(self, room: str) -> tuple[StreamPosition, list[HistoryEntry]]:
        REDIS.check()
        call = self._replay(
            keys=[_meta_key(room), _history_key(room)], args=[new_epoch(), OFFSET_KEY_TTL_S]
        )
        offset, epoch, raw_entries = await self._call("resume", call)
        return StreamPosition(int(offset), _text(epoch)), [_entry(raw) for raw in raw_entries]

    async def streams(self, rooms: list[str]) -> dict[str, RoomStream]:
        if not rooms:
            return {}
        REDIS.check()
        keys = [name for room in rooms for name in (_meta_key(room), _history_key(room))]
        args = [*(new_epoch() for _ in rooms), OFFSET_KEY_TTL_S]
        rows = await self._call("resume", self._streams(keys=keys, args=args))
        return {
            room: RoomStream(
                StreamPosition(int(offset), _text(epoch)),
                int(last_seq),
                [_entry(raw) for raw in raw_entries],
            )
            for room, (offset, epoch, last_seq, raw_entries) in zip(rooms, rows, strict=True)
        }

    async def positions(self, rooms: list[str]) -> dict[str, StreamPosition]:
        if not rooms:
            return {}
        REDIS.check()
        keys = [_meta_key(room) for room in rooms]
        args = [*(new_epoch() for _ in rooms), OFFSET_KEY_TTL_S]
        rows = await self._call("bus", self._positions(keys=keys, args=args))
        return {
            room: StreamPosition(int(row[0]), _text(row[1]))
            for room, row in zip(rooms, rows, strict=True)
        }

    def handle(self, raw: bytes) -> None:
        """One message from the subscriber: a room event, a control or a process message."""
        message = msgpack.unpackb(raw, raw=False)
        kind = message[0]
        if kind == EVENT:
            _, room, offset, epoch, seq, event, data_json, exclude, sender = message
            self.hub.deliver(
                room, offset, epoch, seq, event, data_json, exclude=exclude, sender=sender
            )
        elif kind == CONTROL:
            self.hub.control(message[1], message[2])
        elif kind == PROCESS:
            self._on_process_message(message[1])
        else:
            logger.warning("bus: unexpected message kind %r", kind)


class _Subscriber:
    """This process's one subscriber connection, kept alive across Redis outages."""

    def __init__(self, bus: RedisBus) -> None:
        self._bus = bus
        # Channels this process wants, with the futures of subscriptions not yet confirmed.
        self._wanted: set[str] = {*shard_channels(), process_channel()}
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        # The first connection: wait for it briefly, but a Redis that is down at start must
        # not keep the process from serving (it reconnects in the background).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 3.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop()

    async def subscribe(self, channel: str) -> None:
        """Listen to ``channel``; returns once Redis confirmed it (events published after
        that reach this process), or at once while Redis is down (resubscribed later)."""
        self._wanted.add(channel)
        if self._pubsub is None:
            return
        future = self._confirming.get(channel)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._confirming[channel] = future
            try:
                await self._pubsub.subscribe(channel)
            except REDIS_ERRORS as exc:
                self._confirming.pop(channel, None)
                REDIS.failed("bus", exc)
                return
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(future), PONG_TIMEOUT_S)

    async def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        if self._pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._pubsub.unsubscribe(channel)

    async def _connect(self) -> None:
        client = aioredis.Redis.from_url(settings.REDIS_URL, **async_options())
        pubsub = client.pubsub()
        try:
            channels = sorted(self._wanted)
            await pubsub.subscribe(*channels)
            pending = set(channels)
            while pending:
                message = await pubsub.get_message(timeout=PONG_TIMEOUT_S)
                if message is None:
                    raise TimeoutError("no subscription confirmation")
                if message["type"] == "subscribe":
                    pending.discard(_text(message["channel"]))
                elif message["type"] == "message":
                    self._bus.handle(message["data"])
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()
            raise
        self._client, self._pubsub = client, pubsub

    async def _drop(self) -> None:
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        for future in self._confirming.values():
            if not future.done():
                future.set_result(None)
        self._confirming.clear()
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()
            if client is not None:
                await client.aclose()

    async def _run(self) -> None:
        attempt = 0
        while True:
            if cancelling():
                raise asyncio.CancelledError
            try:
                if self._pubsub is None:
                    await self._connect()
                    attempt = 0
                    first = not self._ready.is_set()
                    self._ready.set()
                    REDIS.recovered()
                    if not first and self._bus.on_reconnect is not None:
                        await self._bus.on_reconnect()
                await self._listen()
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                if cancelling():
                    raise asyncio.CancelledError from None
                REDIS.failed("bus", exc)
                await self._drop()
                delay = RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)]
                attempt += 1
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        """Hand messages to the bus; ping when idle; raise when Redis stops answering."""
        pubsub = self._pubsub
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        ping_sent: float | None = None
        while True:
            if cancelling():
                raise asyncio.CancelledError
            message = await pubsub.get_message(timeout=IDLE_PING_S)
            now = loop.time()
            if message is None:
                if ping_sent is not None and now - ping_sent > PONG_TIMEOUT_S:
                    raise TimeoutError("Redis did not answer the subscriber's ping")
                if ping_sent is None and now - last_heard >= IDLE_PING_S:
                    await pubsub.ping()
                    ping_sent = now
                continue
            last_heard, ping_sent = now, None
            if not REDIS.up:  # it answers again (a publish had failed meanwhile)
                REDIS.recovered()
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            try:
                self._bus.handle(message["data"])
            except Exception:
                logger.exception("bus: failed to handle a message")
        elif kind == "subscribe":
            future = self._confirming.pop(_text(message["channel"]), None)
            if future is not None and not future.done():
                future.set_result(None)


def publish_sync(room: str, event: str, data_json: str) -> int:
    """Publish a room event from sync code (threads, management commands) through Redis."""
    REDIS.check()
    keys, args = _publish_args(room, event, data_json)
    try:
        result = cast(list[Any], sync_redis().eval(_PUBLISH_LUA, len(keys), *keys, *args))
    except REDIS_ERRORS as exc:
        raise REDIS.failed("bus", exc) from None
    return int(result[0])


def _publish_sync(channel: str, payload: bytes) -> None:
    REDIS.check()
    try:
        sync_redis().publish(channel, payload)
    except REDIS_ERRORS as exc:
        raise REDIS.failed("bus", exc) from None


def process_control_sync(message: dict[str, Any]) -> None:
    """Tell every server process (through Redis) to do ``message["action"]``."""
    _publish_sync(process_channel(), msgpack.packb([PROCESS, message]))


def control_sync(room: str, message: dict[str, Any]) -> None:
    _publish_sync(room_channel(room), msgpack.packb([CONTROL, room, message]))
