"""Presence in Redis, shared by every server process (see ``store`` for the contract).

Keys under ``<prefix>:presence``:

- ``conn:{socket}`` hash: ``d`` (the entry as JSON) plus ``uid``, ``cid``, ``zone`` for the
  scripts. It outlives its expiry by a grace period so a sweeper can still remove it.
- ``conns`` zset socket → expiry: what ``expired()`` reads; a member is the removal claim.
- ``user:{uid}``, ``active:{uid}`` (non-away only), ``zone:{zone}``, ``char:{cid}`` zsets
  socket → expiry: reads ignore scores ``<= now``, so expired members are harmless.
- ``status:{uid}`` (absent = offline), ``seen:{uid}``, ``activity:{uid}`` (JSON list).

Every key has an expiry; writes only ever extend an index's expiry, never shorten it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from realtime.core.health import redis_guarded
from realtime.core.redis_client import async_redis, key, script
from realtime.state.presence.store import (
    ACTIVITY_KEEP,
    ACTIVITY_TTL_S,
    ConnEntry,
    PutResult,
    Removal,
    entry_from_json,
    entry_to_json,
)

# How long an entry's data stays removable after its expiry, on top of one more ttl.
GRACE_MS = 60_000
LAST_SEEN_TTL_S = 30 * 24 * 3600

# Helpers shared by the scripts. ``extend`` never shortens a key's expiry.
_LUA_PRELUDE = """
local p = ARGV[1]
local function extend(k, ms)
  if redis.call('PTTL', k) < ms then redis.call('PEXPIRE', k, ms) end
end
local function gone(k, now)
  return redis.call('ZCOUNT', k, '(' .. now, '+inf') == 0
end
"""

# put_entry(): KEYS: conn hash, conns zset. ARGV: prefix, socket, data, uid, cid|'', has zone
# '0'|'1', zone, away '0'|'1', now, expiry, keep. Returns {previous data or nil, character_left
# 0|1}.
_PUT_FN = """
local function put_entry()
  local sid, uid, cid, has_zone, zone = ARGV[2], ARGV[4], ARGV[5], ARGV[6] == '1', ARGV[7]
  local now, expiry, keep = ARGV[9], ARGV[10], tonumber(ARGV[11])
  local old = redis.call('HMGET', KEYS[1], 'd', 'uid', 'cid', 'zone')
  local left = 0
  if old[1] then
    if old[2] ~= uid then
      redis.call('ZREM', p .. ':user:' .. old[2], sid)
      redis.call('ZREM', p .. ':active:' .. old[2], sid)
    end
    if old[4] and not (has_zone and old[4] == zone) then
      redis.call('ZREM', p .. ':zone:' .. old[4], sid)
    end
    if old[3] and old[3] ~= cid then
      local ck = p .. ':char:' .. old[3]
      redis.call('ZREM', ck, sid)
      if gone(ck, now) then left = 1 end
    end
  end
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'd', ARGV[3], 'uid', uid)
  if cid ~= '' then redis.call('HSET', KEYS[1], 'cid', cid) end
  if has_zone then redis.call('HSET', KEYS[1], 'zone', zone) end
  redis.call('PEXPIRE', KEYS[1], keep)
  redis.call('ZADD', KEYS[2], expiry, sid)
  extend(KEYS[2], keep)
  local function index(k)
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
    redis.call('ZADD', k, expiry, sid)
    extend(k, keep)
  end
  index(p .. ':user:' .. uid)
  if ARGV[8] == '1' then
    redis.call('ZREM', p .. ':active:' .. uid, sid)
  else
    index(p .. ':active:' .. uid)
  end
  if has_zone then index(p .. ':zone:' .. zone) end
  if cid ~= '' then index(p .. ':char:' .. cid) end
  local status = p .. ':status:' .. uid
  if redis.call('EXISTS', status) == 1 then extend(status, keep) end
  return {old[1], left}
end
"""
_PUT_LUA = _LUA_PRELUDE + _PUT_FN + "return put_entry()"

# remove_entry(): KEYS: conn hash, conns zset. ARGV: prefix, socket, now, expired only '0'|'1'.
# Returns {data, character_left 0|1, uid} or nil.
_REMOVE_FN = """
local function remove_entry()
  local sid, now = ARGV[2], ARGV[3]
  if ARGV[4] == '1' then
    local score = redis.call('ZSCORE', KEYS[2], sid)
    if not score or tonumber(score) > tonumber(now) then return nil end
  end
  if redis.call('ZREM', KEYS[2], sid) == 0 then return nil end
  local old = redis.call('HMGET', KEYS[1], 'd', 'uid', 'cid', 'zone')
  if not old[1] then return nil end
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', p .. ':user:' .. old[2], sid)
  redis.call('ZREM', p .. ':active:' .. old[2], sid)
  if old[4] then redis.call('ZREM', p .. ':zone:' .. old[4], sid) end
  local left = 0
  if old[3] then
    local ck = p .. ':char:' .. old[3]
    redis.call('ZREM', ck, sid)
    if gone(ck, now) then left = 1 end
  end
  return {old[1], left, old[2]}
end
"""
# KEYS, ARGV: remove_entry's. Returns {data, left} or nil.
_REMOVE_LUA = (
    _LUA_PRELUDE
    + _REMOVE_FN
    + """
local removed = remove_entry()
if not removed then return nil end
return {removed[1], removed[2]}
"""
)

# user_status(user zset, active zset, status key, now): the user's status recomputed and
# swapped; returns {previous, new}.
_STATUS_FN = """
local function user_status(user_k, active_k, status_k, now)
  redis.call('ZREMRANGEBYSCORE', user_k, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', active_k, '-inf', now)
  local new = 'offline'
  if redis.call('ZCARD', active_k) > 0 then
    new = 'online'
  elseif redis.call('ZCARD', user_k) > 0 then
    new = 'away'
  end
  local previous = redis.call('GET', status_k) or 'offline'
  if new == 'offline' then
    redis.call('DEL', status_k)
  else
    local ttl = redis.call('PTTL', user_k)
    if ttl <= 0 then ttl = 86400000 end
    redis.call('SET', status_k, new, 'PX', ttl)
  end
  return {previous, new}
end
"""
# KEYS: user zset, active zset, status. ARGV: prefix, now. Returns {previous, new}.
_STATUS_LUA = _LUA_PRELUDE + _STATUS_FN + "return user_status(KEYS[1], KEYS[2], KEYS[3], ARGV[2])"

# A new connection's entry, then its user's status, in one script (one round trip: a pipeline
# of scripts costs redis-py a SCRIPT EXISTS round trip more). KEYS: put's, then the user's
# status keys. ARGV: put's. Returns {previous, new} status.
_PUT_CONNECTED_LUA = (
    _LUA_PRELUDE
    + _PUT_FN
    + _STATUS_FN
    + """
put_entry()
return user_status(KEYS[3], KEYS[4], KEYS[5], ARGV[9])
"""
)

# The user's last seen, then its status, in one script. KEYS: the user's status keys, then its
# last-seen key. ARGV: prefix, now, last seen ms, last seen ttl s. Returns {previous, new}.
_USER_LEFT_LUA = (
    _LUA_PRELUDE
    + _STATUS_FN
    + """
redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[4])
return user_status(KEYS[1], KEYS[2], KEYS[3], ARGV[2])
"""
)

# A connection's end: its entry removed (as _REMOVE_LUA), then, if there was one, its user's
# last seen (the entry's active_at) and status (as _USER_LEFT_LUA), in one round trip. KEYS,
# ARGV: remove_entry's. Returns {data, left, previous, new} or nil.
_DISCONNECT_LUA = (
    _LUA_PRELUDE
    + _REMOVE_FN
    + _STATUS_FN
    + """
local removed = remove_entry()
if not removed then return nil end
local uid = removed[3]
local seen = math.max(cjson.decode(removed[1]).active_at, 0)
redis.call('SET', p .. ':seen:' .. uid, string.format('%d', seen), 'EX', ARGV[5])
local status = user_status(p .. ':user:' .. uid, p .. ':active:' .. uid, p .. ':status:' .. uid,
  ARGV[3])
return {removed[1], removed[2], status[1], status[2]}
"""
)

# KEYS: index zsets. ARGV: prefix, now. Returns, per key, the data of its live entries.
_READ_LUA = (
    _LUA_PRELUDE
    + """
local out = {}
for i, k in ipairs(KEYS) do
  local found = {}
  for _, sid in ipairs(redis.call('ZRANGEBYSCORE', k, '(' .. ARGV[2], '+inf')) do
    local d = redis.call('HGET', p .. ':conn:' .. sid, 'd')
    if d then found[#found + 1] = d end
  end
  out[i] = found
end
return out
"""
)


def _k(*parts: object) -> str:
    return key("presence", *parts)


def _put_call(entry: ConnEntry, now_ms: int, ttl_ms: int) -> tuple[list[str], list[Any]]:
    keys = [_k("conn", entry.socket_id), _k("conns")]
    args: list[Any] = [
        _k(),
        entry.socket_id,
        entry_to_json(entry),
        entry.user_id,
        "" if entry.character_id is None else entry.character_id,
        "0" if entry.zone is None else "1",
        entry.zone or "",
        "1" if entry.away else "0",
        now_ms,
        now_ms + ttl_ms,
        ttl_ms * 2 + GRACE_MS,
    ]
    return keys, args


# Scripts per pipelined round trip when many entries change at once (graceful shutdown).
BATCH = 500


def _sorted(raw: list[bytes]) -> list[ConnEntry]:
    return sorted(map(entry_from_json, raw), key=lambda e: e.socket_id)


def _status_keys(user_id: int) -> list[str]:
    return [_k("user", user_id), _k("active", user_id), _k("status", user_id)]


# KEYS: activity lists, one per item (a user's may come more than once). ARGV: the items (JSON)
# in the same order, then how many a list keeps and its ttl (s).
_PUSH_ACTIVITIES = """
local keep = tonumber(ARGV[#ARGV - 1]) - 1
local ttl = ARGV[#ARGV]
for i, name in ipairs(KEYS) do
  redis.call('LPUSH', name, ARGV[i])
  redis.call('LTRIM', name, 0, keep)
  redis.call('EXPIRE', name, ttl)
end
return #KEYS
"""


class RedisPresenceStore:
    """Many processes sharing Redis; each write, and ``user_status``, is one atomic script."""

    async def _eval(self, lua: str, keys: list[str], args: list[Any]) -> Any:
        return await script(lua)(keys=keys, args=args)

    @redis_guarded("presence")
    async def put(self, entry: ConnEntry, *, now_ms: int, ttl_ms: int) -> PutResult:
        keys, args = _put_call(entry, now_ms, ttl_ms)
        previous, left = await self._eval(_PUT_LUA, keys, args)
        return PutResult(None if previous is None else entry_from_json(previous), bool(left))

    @redis_guarded("presence")
    async def put_many(self, entries: Sequence[ConnEntry], *, now_ms: int, ttl_ms: int) -> None:
        if not entries:
            return
        client: Redis = async_redis()
        run = script(_PUT_LUA)
        async with client.pipeline(transaction=False) as pipe:
            for entry in entries:
                keys, args = _put_call(entry, now_ms, ttl_ms)
                await run(keys=keys, args=args, client=pipe)
            await pipe.execute()

    @redis_guarded("presence")
    async def put_connected(self, entry: ConnEntry, *, now_ms: int, ttl_ms: int) -> tuple[str, str]:
        keys, args = _put_call(entry, now_ms, ttl_ms)
        keys += _status_keys(entry.user_id)
        previous, new = await self._eval(_PUT_CONNECTED_LUA, keys, args)
        return previous.decode(), new.decode()

    @redis_guarded("presence")
    async def user_left(self, user_id: int, seen_ms: int, *, now_ms: int) -> tuple[str, str]:
        keys = [*_status_keys(user_id), _k("seen", user_id)]
        args = [_k(), now_ms, seen_ms, LAST_SEEN_TTL_S]
        previous, new = await self._eval(_USER_LEFT_LUA, keys, args)
        return previous.decode(), new.decode()

    @redis_guarded("presence")
    async def remove(
        self, socket_id: str, *, now_ms: int, expired_only: bool = False
    ) -> Removal | None:
        keys = [_k("conn", socket_id), _k("conns")]
        args = [_k(), socket_id, now_ms, int(expired_only)]
        result = await self._eval(_REMOVE_LUA, keys, args)
        if result is None:
            return None
        data, left = result
        return Removal(entry_from_json(data), bool(left))

    @redis_guarded("presence")
    async def disconnect(
        self, socket_id: str, *, now_ms: int
    ) -> tuple[Removal, tuple[str, str]] | None:
        keys = [_k("conn", socket_id), _k("conns")]
        args = [_k(), socket_id, now_ms, 0, LAST_SEEN_TTL_S]
        result = await self._eval(_DISCONNECT_LUA, keys, args)
        if result is None:
            return None
        data, left, previous, new = result
        return Removal(entry_from_json(data), bool(left)), (previous.decode(), new.decode())

    @redis_guarded("presence")
    async def remove_many(self, socket_ids: Sequence[str], *, now_ms: int) -> list[Removal | None]:
        client: Redis = async_redis()
        run = script(_REMOVE_LUA)
        removals: list[Removal | None] = []
        for start in range(0, len(socket_ids), BATCH):
            async with client.pipeline(transaction=False) as pipe:
                for socket_id in socket_ids[start : start + BATCH]:
                    keys = [_k("conn", socket_id), _k("conns")]
                    await run(keys=keys, args=[_k(), socket_id, now_ms, 0], client=pipe)
                results = await pipe.execute()
            removals.extend(
                None if r is None else Removal(entry_from_json(r[0]), bool(r[1])) for r in results
            )
        return removals

    @redis_guarded("presence")
    async def expired(self, *, now_ms: int, limit: int = 500) -> list[str]:
        client: Redis = async_redis()
        raw = await client.zrangebyscore(_k("conns"), "-inf", now_ms, start=0, num=limit)
        return [sid.decode() for sid in cast(list[bytes], raw)]

    @redis_guarded("presence")
    async def user_status(self, user_id: int, *, now_ms: int) -> tuple[str, str]:
        previous, new = await self._eval(_STATUS_LUA, _status_keys(user_id), [_k(), now_ms])
        return previous.decode(), new.decode()

    @redis_guarded("presence")
    async def user_status_many(
        self, user_ids: Sequence[int], *, now_ms: int
    ) -> dict[int, tuple[str, str]]:
        client: Redis = async_redis()
        run = script(_STATUS_LUA)
        statuses: dict[int, tuple[str, str]] = {}
        unique = list(dict.fromkeys(user_ids))
        for start in range(0, len(unique), BATCH):
            chunk = unique[start : start + BATCH]
            async with client.pipeline(transaction=False) as pipe:
                for uid in chunk:
                    await run(keys=_status_keys(uid), args=[_k(), now_ms], client=pipe)
                results = await pipe.execute()
            for uid, (previous, new) in zip(chunk, results, strict=True):
                statuses[uid] = (previous.decode(), new.decode())
        return statuses

    @redis_guarded("presence")
    async def entries_for_users(
        self, user_ids: Sequence[int], *, now_ms: int
    ) -> dict[int, list[ConnEntry]]:
        unique = list(dict.fromkeys(user_ids))
        if not unique:
            return {}
        keys = [_k("user", uid) for uid in unique]
        found = await self._eval(_READ_LUA, keys, [_k(), now_ms])
        return {uid: _sorted(raw) for uid, raw in zip(unique, found, strict=True)}

    @redis_guarded("presence")
    async def entries_in_zone(self, zone: str, *, now_ms: int) -> list[ConnEntry]:
        (found,) = await self._eval(_READ_LUA, [_k("zone", zone)], [_k(), now_ms])
        return _sorted(found)

    @redis_guarded("presence")
    async def last_seen(self, user_ids: Sequence[int]) -> dict[int, int]:
        unique = list(dict.fromkeys(user_ids))
        if not unique:
            return {}
        client: Redis = async_redis()
        values = await client.mget([_k("seen", uid) for uid in unique])
        return {uid: int(v) for uid, v in zip(unique, values, strict=True) if v is not None}

    @redis_guarded("presence")
    async def set_last_seen(self, user_id: int, at_ms: int) -> None:
        client: Redis = async_redis()
        await client.set(_k("seen", user_id), at_ms, ex=LAST_SEEN_TTL_S)

    @redis_guarded("presence")
    async def set_last_seen_many(self, seen: dict[int, int]) -> None:
        if not seen:
            return
        client: Redis = async_redis()
        async with client.pipeline(transaction=False) as pipe:
            for uid, at_ms in seen.items():
                pipe.set(_k("seen", uid), at_ms, ex=LAST_SEEN_TTL_S)
            await pipe.execute()

    @redis_guarded("presence")
    async def push_activity(
        self,
        user_id: int,
        activity: dict[str, Any],
        *,
        keep: int = ACTIVITY_KEEP,
        ttl_s: int = ACTIVITY_TTL_S,
    ) -> None:
        await self._eval(
            _PUSH_ACTIVITIES, [_k("activity", user_id)], [orjson.dumps(activity), keep, ttl_s]
        )

    @redis_guarded("presence")
    async def push_activities(self, items: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """One script per ``BATCH`` items: every connect, select and disconnect records one,
        and three commands each through a redis-py pipeline cost more CPU than the rest of
        what presence does for them."""
        for start in range(0, len(items), BATCH):
            batch = items[start : start + BATCH]
            keys = [_k("activity", user_id) for user_id, _ in batch]
            args = [orjson.dumps(activity) for _, activity in batch]
            await self._eval(_PUSH_ACTIVITIES, keys, [*args, ACTIVITY_KEEP, ACTIVITY_TTL_S])

    @redis_guarded("presence")
    async def activities(self, user_id: int) -> list[dict[str, Any]]:
        client: Redis = async_redis()
        raw = await cast("Awaitable[list[bytes]]", client.lrange(_k("activity", user_id), 0, -1))
        return [orjson.loads(item) for item in raw]

    @redis_guarded("presence")
    async def count_entries(self, *, now_ms: int) -> int:
        client: Redis = async_redis()
        return int(await client.zcount(_k("conns"), f"({now_ms}", "+inf"))
