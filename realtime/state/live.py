"""Live character state: positions and action cooldowns, kept off the database.

A move is judged against the live position and, when accepted, stored here and marked dirty;
``PositionWriter`` writes dirty positions behind in batches (periodically, when a character's
connection ends and at shutdown), so moving players never queue on the ORM thread. With
``REDIS_URL`` the state lives in Redis and is shared by every process (a character played on two
connections on two processes has one position; a dirty position left by a killed process is
written by another); otherwise it lives in this process.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Protocol, cast

from characters.rules import Position
from realtime.core.health import redis_guarded
from realtime.core.redis_client import async_redis, command, key, script

LIVE_TTL_S = 3600  # live state of a character nobody played for an hour is dropped


@dataclass(frozen=True, slots=True)
class LiveState:
    character_id: int
    zone_id: int
    zone: str
    position: Position
    # The movement budget (PROTOCOL.md §5.2): ``budget`` units left at ``since``, the server
    # time (epoch seconds, on arrival) of the last accepted move or of the selection / zone
    # change that emptied it.
    since: float
    budget: float = 0.0


class LiveStore(Protocol):
    async def get(self, character_id: int) -> LiveState | None: ...

    async def put(self, state: LiveState, *, dirty: bool) -> None: ...

    async def enter(self, state: LiveState) -> LiveState:
        """Store ``state`` for a new selection of its character (its budget empty from
        ``since``), keeping the stored position when the stored state is in the same zone: it
        stays dirty if it was not written yet and clean if it was (a reconnect that does not
        move writes nothing); otherwise ``state``'s position (the database's) is stored clean.
        Returns the state stored."""
        ...

    async def take_dirty(self, limit: int) -> list[LiveState]: ...

    async def take(self, character_id: int) -> LiveState | None:
        """The character's state if its position is not written yet (taking it out of the
        dirty set, as ``take_dirty`` does), else None: the database holds it already."""
        ...

    async def mark_dirty(self, character_ids: list[int]) -> None: ...

    async def claim_cooldown(self, character_id: int, action: str, cooldown_ms: int) -> int: ...


class LocalLiveStore:
    def __init__(self) -> None:
        self._states: dict[int, LiveState] = {}
        self._dirty: set[int] = set()
        self._ready_at: dict[tuple[int, str], float] = {}

    async def get(self, character_id: int) -> LiveState | None:
        return self._states.get(character_id)

    async def put(self, state: LiveState, *, dirty: bool) -> None:
        self._states[state.character_id] = state
        if dirty:
            self._dirty.add(state.character_id)
        else:
            self._dirty.discard(state.character_id)

    async def enter(self, state: LiveState) -> LiveState:
        live = self._states.get(state.character_id)
        carried = live is not None and live.zone_id == state.zone_id
        if live is not None and carried:
            state = replace(state, position=live.position)
        await self.put(state, dirty=carried and state.character_id in self._dirty)
        return state

    async def take_dirty(self, limit: int) -> list[LiveState]:
        taken: list[LiveState] = []
        while self._dirty and len(taken) < limit:
            state = self._states.get(self._dirty.pop())
            if state is not None:
                taken.append(state)
        return taken

    async def take(self, character_id: int) -> LiveState | None:
        if character_id not in self._dirty:
            return None
        self._dirty.discard(character_id)
        return self._states.get(character_id)

    async def mark_dirty(self, character_ids: list[int]) -> None:
        self._dirty.update(cid for cid in character_ids if cid in self._states)

    async def claim_cooldown(self, character_id: int, action: str, cooldown_ms: int) -> int:
        """Start the cooldown unless it runs; 0 when claimed, else the ms left."""
        now = time.monotonic()
        ready_at = self._ready_at.get((character_id, action), 0.0)
        if ready_at > now:
            return max(1, int((ready_at - now) * 1000 + 0.999))
        if len(self._ready_at) > 50_000:
            self._ready_at = {k: v for k, v in self._ready_at.items() if v > now}
        self._ready_at[(character_id, action)] = now + cooldown_ms / 1000
        return 0


_FIELDS = ["zone_id", "zone", "x", "y", "z", "d", "since", "budget"]

# KEYS: the character's hash, the dirty set. ARGV: character id, then the new state's _FIELDS
# values, then the hash's ttl (s). The stored position is kept when the stored state is whole
# (as _decode reads it) and in the same zone, with its dirty mark as it was (written or not).
# Returns the kept {x, y, z, d}, or false.
_ENTER_LUA = """
local old = redis.call('HMGET', KEYS[1], 'zone_id', 'zone', 'x', 'y', 'z', 'd', 'since')
local carried = old[1] == ARGV[2]
for i = 2, 7 do
  if not old[i] then carried = false end
end
if carried then
  redis.call('HSET', KEYS[1], 'zone_id', ARGV[2], 'zone', ARGV[3], 'since', ARGV[8],
    'budget', ARGV[9])
else
  redis.call('HSET', KEYS[1], 'zone_id', ARGV[2], 'zone', ARGV[3], 'x', ARGV[4], 'y', ARGV[5],
    'z', ARGV[6], 'd', ARGV[7], 'since', ARGV[8], 'budget', ARGV[9])
  redis.call('SREM', KEYS[2], ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[10])
if carried then return {old[3], old[4], old[5], old[6]} end
return false
"""


# KEYS: the character's hash, the dirty set. ARGV: character id, then the state's _FIELDS
# values, then the hash's ttl (s) and 1 when the position is dirty (0 when written).
_PUT_FIELDS = ", ".join(f"'{name}', ARGV[{i + 2}]" for i, name in enumerate(_FIELDS))
_PUT_LUA = f"""
redis.call('HSET', KEYS[1], {_PUT_FIELDS})
redis.call('EXPIRE', KEYS[1], ARGV[10])
if ARGV[11] == '1' then
  redis.call('SADD', KEYS[2], ARGV[1])
else
  redis.call('SREM', KEYS[2], ARGV[1])
end
"""

# KEYS: the character's hash, the dirty set. ARGV: character id. The hash's _FIELDS when the
# character was dirty (and no longer is), else false.
_TAKE_LUA = f"""
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 then return false end
return redis.call('HMGET', KEYS[1], '{"', '".join(_FIELDS)}')
"""


def _encode(state: LiveState) -> list[int | str]:
    """``state``'s values in ``_FIELDS`` order, as the hash stores them."""
    p = state.position
    floats = [p.x, p.y, p.z, p.direction, state.since, state.budget]
    return [state.zone_id, state.zone, *map(repr, floats)]


def _decode(character_id: int, raw: list[bytes | None]) -> LiveState | None:
    # A hash without "budget" (written before it existed, during a rolling deploy) is kept:
    # its budget is empty.
    if any(value is None for value in raw[:7]):
        return None
    zone_id, zone, x, y, z, d, since = (cast(bytes, v) for v in raw[:7])
    budget = raw[7]
    return LiveState(
        character_id=character_id,
        zone_id=int(zone_id),
        zone=zone.decode(),
        position=Position(float(x), float(y), float(z), float(d)),
        since=float(since),
        budget=0.0 if budget is None else float(budget),
    )


class RedisLiveStore:
    """One hash per character, one set of dirty character ids, one key per running cooldown."""

    def _key(self, character_id: int) -> str:
        return key("live", "char", character_id)

    @property
    def _dirty_key(self) -> str:
        return key("live", "dirty")

    @redis_guarded("live")
    async def get(self, character_id: int) -> LiveState | None:
        raw = await command("HMGET", self._key(character_id), *_FIELDS)
        return _decode(character_id, raw)

    @redis_guarded("live")
    async def put(self, state: LiveState, *, dirty: bool) -> None:
        """One script on the pipelined connection: every accepted move comes here, and the
        same three commands through a redis-py pipeline cost several times its CPU."""
        keys = [self._key(state.character_id), self._dirty_key]
        args = [state.character_id, *_encode(state), LIVE_TTL_S, int(dirty)]
        await script(_PUT_LUA)(keys=keys, args=args)

    @redis_guarded("live")
    async def enter(self, state: LiveState) -> LiveState:
        """One round trip: the stored state read and the new one written by one script."""
        keys = [self._key(state.character_id), self._dirty_key]
        args = [state.character_id, *_encode(state), LIVE_TTL_S]
        kept = await script(_ENTER_LUA)(keys=keys, args=args)
        if not kept:
            return state
        x, y, z, d = (float(value) for value in kept)
        return replace(state, position=Position(x, y, z, d))

    @redis_guarded("live")
    async def take_dirty(self, limit: int) -> list[LiveState]:
        client = async_redis()
        ids = await cast(Awaitable[list[bytes] | None], client.spop(self._dirty_key, limit)) or []
        if not ids:
            return []
        pipe = client.pipeline(transaction=False)
        for raw_id in ids:
            pipe.hmget(self._key(int(raw_id)), _FIELDS)
        rows = await pipe.execute()
        states = [_decode(int(raw_id), row) for raw_id, row in zip(ids, rows, strict=True)]
        return [state for state in states if state is not None]

    @redis_guarded("live")
    async def take(self, character_id: int) -> LiveState | None:
        keys = [self._key(character_id), self._dirty_key]
        raw = await script(_TAKE_LUA)(keys=keys, args=[character_id])
        return None if not raw else _decode(character_id, raw)

    @redis_guarded("live")
    async def mark_dirty(self, character_ids: list[int]) -> None:
        if character_ids:
            await cast(Awaitable[int], async_redis().sadd(self._dirty_key, *character_ids))

    @redis_guarded("live")
    async def claim_cooldown(self, character_id: int, action: str, cooldown_ms: int) -> int:
        """Start the cooldown unless it runs (atomic across processes); 0 or the ms left."""
        name = key("cooldown", character_id, action)
        if await command("SET", name, 1, "NX", "PX", max(1, cooldown_ms)):
            return 0
        left = int(await command("PTTL", name))
        return max(1, left)
