"""Socket.IO connection state recovery records (PROTOCOL.md §1.2): what a ``pid`` recovers.

Every Socket.IO connection gets a secret ``pid`` in its CONNECT answer. Its record says whose
connection it was (user, socket id), which rooms it was in and, per room, the position it
joined at (or that a resume last covered: events at or below it were never to be sent), and
the character it played. The connection writes its record when its rooms change (joins and
leaves are rare; nothing is written per delivered event) and when it ends; a client that
reconnects within ``AETURNIS_SIO_RECOVERY_S`` with ``{pid, offset}`` — to any process, since
with ``REDIS_URL`` the records are Redis keys — gets those rooms and the events it missed back
(``realtime.handlers.recovery``).

A record expires ``AETURNIS_SIO_RECOVERY_S`` after its connection ended. While the connection
lives, this process refreshes its record's expiry every ``refresh_seconds()``, so the record of
a connection whose process was killed (no end was written) still lives for the window, and no
longer. A connection that took a record over (a recovery) owns it: writes of the connection it
replaced, which may linger until its transport times out, are refused.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Protocol, cast

import orjson
from django.conf import settings

from realtime.core.health import redis_guarded
from realtime.core.loops import repeat
from realtime.core.redis_client import async_redis, key, redis_enabled, script
from realtime.fanout.history import StreamPosition

logger = logging.getLogger(__name__)


def window_s() -> float:
    """How long after its connection ended a record recovers it (0: recovery is off)."""
    return float(settings.AETURNIS_SIO_RECOVERY_S)


def enabled() -> bool:
    return window_s() > 0


def refresh_seconds() -> float:
    """How often a live connection's record gets its expiry pushed back."""
    window = window_s()
    return max(0.5, min(30.0, window / 4)) if window > 0 else 30.0


def alive_ttl_s() -> float:
    """The expiry of a live connection's record: the window plus one refresh period, so that it
    outlives a killed process by the window at least."""
    return window_s() + refresh_seconds()


def new_pid() -> str:
    """A secret recovery id: whoever holds it (and a token of the same user) recovers."""
    return secrets.token_urlsafe(18)


@dataclass(frozen=True, slots=True)
class RecoveryRecord:
    """What a pid recovers. ``rooms`` maps each room to its floor, None when unknown (the
    room's epoch changed under the connection): such a connection cannot be recovered."""

    user_id: int
    socket_id: str
    rooms: dict[str, StreamPosition | None]
    character_id: int | None = None

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "u": self.user_id,
                "s": self.socket_id,
                "r": {
                    room: None if floor is None else [floor.offset, floor.epoch]
                    for room, floor in self.rooms.items()
                },
                "c": self.character_id,
            }
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> RecoveryRecord | None:
        """The record, or None for anything malformed."""
        try:
            obj = orjson.loads(raw)
            rooms: dict[str, StreamPosition | None] = {}
            for room, floor in obj["r"].items():
                rooms[str(room)] = (
                    None if floor is None else StreamPosition(int(floor[0]), str(floor[1]))
                )
            character = obj.get("c")
            return cls(
                user_id=int(obj["u"]),
                socket_id=str(obj["s"]),
                rooms=rooms,
                character_id=None if character is None else int(character),
            )
        except (orjson.JSONDecodeError, LookupError, TypeError, ValueError, AttributeError):
            return None


class RecoveryStore(Protocol):
    async def save(
        self, pid: str, record: RecoveryRecord, ttl_s: float, *, claim: bool = False
    ) -> bool:
        """Write ``record`` under ``pid`` expiring in ``ttl_s``: always when ``claim``, else only
        when there is none or it is the same connection's. Whether it was written."""
        ...

    async def load(self, pid: str) -> RecoveryRecord | None: ...

    async def discard(self, pid: str, socket_id: str) -> None:
        """Remove the record of ``pid`` if it is ``socket_id``'s."""
        ...

    async def expire(self, pids: list[str], ttl_s: float) -> None:
        """Set the expiry of these records (the ones that exist) to ``ttl_s``."""
        ...


class LocalRecoveryStore:
    """This process only (no ``REDIS_URL``): a client recovers on the process it left."""

    def __init__(self) -> None:
        self._records: dict[str, tuple[RecoveryRecord, float]] = {}

    def _live(self, pid: str) -> RecoveryRecord | None:
        found = self._records.get(pid)
        if found is None:
            return None
        record, until = found
        if until <= time.monotonic():
            del self._records[pid]
            return None
        return record

    async def save(
        self, pid: str, record: RecoveryRecord, ttl_s: float, *, claim: bool = False
    ) -> bool:
        current = self._live(pid)
        if not claim and current is not None and current.socket_id != record.socket_id:
            return False
        if len(self._records) > 10_000:  # keep the dict from growing without bound
            now = time.monotonic()
            self._records = {p: v for p, v in self._records.items() if v[1] > now}
        self._records[pid] = (record, time.monotonic() + ttl_s)
        return True

    async def load(self, pid: str) -> RecoveryRecord | None:
        return self._live(pid)

    async def discard(self, pid: str, socket_id: str) -> None:
        current = self._live(pid)
        if current is not None and current.socket_id == socket_id:
            del self._records[pid]

    async def expire(self, pids: list[str], ttl_s: float) -> None:
        until = time.monotonic() + ttl_s
        for pid in pids:
            if self._live(pid) is not None:
                self._records[pid] = (self._records[pid][0], until)


_SAVE_LUA = """
if ARGV[4] ~= '1' then
  local owner = redis.call('HGET', KEYS[1], 's')
  if owner and owner ~= ARGV[1] then return 0 end
end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

_DISCARD_LUA = """
if redis.call('HGET', KEYS[1], 's') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisRecoveryStore:
    """One hash per pid (``<prefix>:sio-recovery:<pid>``: owner socket id and the record),
    readable by every process."""

    def __init__(self) -> None:
        self._save: Any = None
        self._discard: Any = None

    def _key(self, pid: str) -> str:
        return key("sio-recovery", pid)

    def _scripts(self) -> tuple[Any, Any]:
        if self._save is None:
            self._save = script(_SAVE_LUA)
            self._discard = script(_DISCARD_LUA)
        return self._save, self._discard

    @redis_guarded("recovery")
    async def save(
        self, pid: str, record: RecoveryRecord, ttl_s: float, *, claim: bool = False
    ) -> bool:
        save, _ = self._scripts()
        args = [record.socket_id, record.encode(), _ms(ttl_s), "1" if claim else "0"]
        return bool(await save(keys=[self._key(pid)], args=args))

    @redis_guarded("recovery")
    async def load(self, pid: str) -> RecoveryRecord | None:
        raw = await cast(Any, async_redis().hget(self._key(pid), "d"))
        return None if raw is None else RecoveryRecord.decode(raw)

    @redis_guarded("recovery")
    async def discard(self, pid: str, socket_id: str) -> None:
        _, discard = self._scripts()
        await discard(keys=[self._key(pid)], args=[socket_id])

    @redis_guarded("recovery")
    async def expire(self, pids: list[str], ttl_s: float) -> None:
        if not pids:
            return
        async with async_redis().pipeline(transaction=False) as pipe:
            for pid in pids:
                pipe.pexpire(self._key(pid), _ms(ttl_s))
            await pipe.execute()


def make_recovery_store() -> RecoveryStore:
    return RedisRecoveryStore() if redis_enabled() else LocalRecoveryStore()


class Recoveries:
    """The records of this process's recoverable connections, and their expiry while alive.

    Every write is best effort: when Redis is down the connection goes on, and a later change
    or its end writes the record again (a connection whose record could not be written is
    simply not recovered).
    """

    def __init__(self, store: RecoveryStore) -> None:
        self.store = store
        self._live: dict[str, str] = {}  # socket id -> pid, of connections that hold a record

    async def save(self, pid: str, record: RecoveryRecord, *, claim: bool = False) -> bool:
        """Write a live connection's record (``claim``: take it over from the connection it
        recovers). Whether it was written; refused when another connection took it over."""
        written = await self.store.save(pid, record, alive_ttl_s(), claim=claim)
        if written:
            self._live[record.socket_id] = pid
        return written

    async def load(self, pid: str) -> RecoveryRecord | None:
        return await self.store.load(pid)

    async def end(self, pid: str, record: RecoveryRecord, *, recoverable: bool) -> None:
        """The connection ended: its record recovers it for the window from now on, or, when
        it was not to be recovered (the client disconnected, the server refused it), goes."""
        self._live.pop(record.socket_id, None)
        if recoverable:
            await self.store.save(pid, record, window_s())
        else:
            await self.store.discard(pid, record.socket_id)

    async def refresh(self) -> None:
        """Push back the expiry of every live connection's record (one round trip)."""
        if self._live:
            await self.store.expire(sorted(set(self._live.values())), alive_ttl_s())

    async def end_all(self) -> None:
        """Graceful shutdown: every live connection's record expires a window from now (the
        server may stop before each connection's end is written)."""
        pids, self._live = sorted(set(self._live.values())), {}
        if pids:
            await self.store.expire(pids, window_s())

    async def run(self) -> None:
        await repeat(refresh_seconds, self.refresh, "refreshing recovery records")
