"""Where presence lives: one entry per open socket, shared by every server process.

Two backends with the same behaviour: ``LocalPresenceStore`` (one process, plain dicts) and
``RedisPresenceStore`` (``store_redis``; many processes, every read-modify-write in one Lua
script). Time is always passed in (``now_ms``) so both backends are testable with a fake clock.

An entry is *live* while ``now_ms < expiry`` where ``expiry = now_ms + ttl_ms`` of its last
``put``. Expired entries are invisible to every read but stay removable, so a sweeper can clean
up after a process that died without removing its sockets.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

ONLINE = "online"
AWAY = "away"
OFFLINE = "offline"

ACTIVITY_KEEP = 100
ACTIVITY_TTL_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class ConnEntry:
    socket_id: str
    user_id: int
    character_id: int | None
    character_name: str  # "" when no character
    zone: str | None  # zone key
    guild_id: int | None
    away: bool
    active_at: int  # ms epoch of the connection's last client event
    process: str  # id of the server process holding the socket


@dataclass(frozen=True, slots=True)
class Removal:
    entry: ConnEntry
    character_left: bool  # entry had a character and no other live entry has it now


@dataclass(frozen=True, slots=True)
class PutResult:
    previous: ConnEntry | None
    # previous had another character_id than the new entry and no other live entry has it now
    character_left: bool


def entry_to_json(entry: ConnEntry) -> bytes:
    return orjson.dumps(entry)


def entry_from_json(raw: bytes | str) -> ConnEntry:
    return ConnEntry(**orjson.loads(raw))


def status_of(live: int, active: int) -> str:
    """``online`` with any non-away live entry, ``away`` with only away ones, else ``offline``."""
    if active:
        return ONLINE
    return AWAY if live else OFFLINE


def status_of_entries(entries: Iterable[ConnEntry]) -> str:
    """A user's (or character's) status over its live entries."""
    listed = list(entries)
    return status_of(len(listed), sum(1 for e in listed if not e.away))


class PresenceStore(Protocol):
    """The presence storage contract; see the module docstring for liveness."""

    async def put(self, entry: ConnEntry, *, now_ms: int, ttl_ms: int) -> PutResult:
        """Create or replace the entry of ``entry.socket_id``, live until ``now_ms + ttl_ms``.

        Atomic. Moves the socket between zone and character indexes when they changed and
        reports the entry it replaced (even an expired one) and whether that entry's character
        is now held by no live entry.
        """
        ...

    async def put_many(self, entries: Sequence[ConnEntry], *, now_ms: int, ttl_ms: int) -> None:
        """``put`` each entry (heartbeat refresh); one round trip on Redis."""
        ...

    async def put_connected(self, entry: ConnEntry, *, now_ms: int, ttl_ms: int) -> tuple[str, str]:
        """A new connection: ``put`` its entry, then ``user_status`` of its user, in one round
        trip on Redis; returns the ``user_status``."""
        ...

    async def user_left(self, user_id: int, seen_ms: int, *, now_ms: int) -> tuple[str, str]:
        """A connection of ``user_id`` ended (its entry removed): ``set_last_seen``, then
        ``user_status``, in one round trip on Redis; returns the ``user_status``."""
        ...

    async def remove(
        self, socket_id: str, *, now_ms: int, expired_only: bool = False
    ) -> Removal | None:
        """Claim and delete an entry, live or expired; exactly one caller gets the Removal.

        Unknown (or already removed) sockets give None; with ``expired_only`` (the sweeper) so
        does an entry that was refreshed since it was found expired.
        """
        ...

    async def disconnect(
        self, socket_id: str, *, now_ms: int
    ) -> tuple[Removal, tuple[str, str]] | None:
        """A connection ended: ``remove`` its entry, then, when there was one, ``user_left``
        with the entry's ``active_at`` (one round trip on Redis); the removal and the
        ``user_status``, or None."""
        ...

    async def remove_many(self, socket_ids: Sequence[str], *, now_ms: int) -> list[Removal | None]:
        """``remove`` each socket (graceful shutdown): few round trips however many."""
        ...

    async def expired(self, *, now_ms: int, limit: int = 500) -> list[str]:
        """Up to ``limit`` socket ids whose expiry is ``<= now_ms``, oldest first; not removed."""
        ...

    async def user_status(self, user_id: int, *, now_ms: int) -> tuple[str, str]:
        """Recompute, store and return ``(previous, new)`` status from the live entries.

        Atomic read-compute-store: each real transition is seen by exactly one caller; others
        get ``(new, new)``. ``previous`` is ``offline`` when nothing was stored.
        """
        ...

    async def user_status_many(
        self, user_ids: Sequence[int], *, now_ms: int
    ) -> dict[int, tuple[str, str]]:
        """``user_status`` of each user (graceful shutdown): few round trips however many."""
        ...

    async def entries_for_users(
        self, user_ids: Sequence[int], *, now_ms: int
    ) -> dict[int, list[ConnEntry]]:
        """Live entries of every asked user (``[]`` for none), each list ordered by socket id."""
        ...

    async def entries_in_zone(self, zone: str, *, now_ms: int) -> list[ConnEntry]:
        """Live entries whose zone is ``zone``, ordered by socket id."""
        ...

    async def last_seen(self, user_ids: Sequence[int]) -> dict[int, int]:
        """Stored last-seen ms for the asked users; users without a value are left out."""
        ...

    async def set_last_seen(self, user_id: int, at_ms: int) -> None: ...

    async def set_last_seen_many(self, seen: dict[int, int]) -> None: ...

    async def push_activity(
        self,
        user_id: int,
        activity: dict[str, Any],
        *,
        keep: int = ACTIVITY_KEEP,
        ttl_s: int = ACTIVITY_TTL_S,
    ) -> None:
        """Record a JSON-serialisable activity; keep the newest ``keep`` for ``ttl_s`` seconds
        after the last push."""
        ...

    async def push_activities(self, items: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """``push_activity`` of each ``(user id, activity)`` in order; one round trip on
        Redis."""
        ...

    async def activities(self, user_id: int) -> list[dict[str, Any]]:
        """The kept activities of a user, newest first."""
        ...

    async def count_entries(self, *, now_ms: int) -> int:
        """How many entries are live (for stats)."""
        ...


@dataclass(slots=True)
class _Slot:
    entry: ConnEntry
    expiry: int


def _index_add(index: dict[Any, set[str]], name: object, socket_id: str) -> None:
    index.setdefault(name, set()).add(socket_id)


def _index_discard(index: dict[Any, set[str]], name: object, socket_id: str) -> None:
    members = index.get(name)
    if members is not None:
        members.discard(socket_id)
        if not members:
            del index[name]


class LocalPresenceStore:
    """One process, no Redis. Every call runs on one event loop, so no locks are needed.

    Entries stay until removed (no grace-period purge, unlike Redis keys): the process that
    holds the sockets removes them itself.
    """

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}
        self._by_user: dict[int, set[str]] = {}
        self._by_zone: dict[str, set[str]] = {}
        self._by_char: dict[int, set[str]] = {}
        self._status: dict[int, str] = {}
        self._seen: dict[int, int] = {}
        self._activity: dict[int, tuple[deque[bytes], float]] = {}

    def _live(self, socket_ids: set[str] | None, now_ms: int) -> list[ConnEntry]:
        slots = (self._slots[sid] for sid in sorted(socket_ids or ()))
        return [slot.entry for slot in slots if now_ms < slot.expiry]

    def _unindex(self, entry: ConnEntry) -> None:
        _index_discard(self._by_user, entry.user_id, entry.socket_id)
        if entry.zone is not None:
            _index_discard(self._by_zone, entry.zone, entry.socket_id)
        if entry.character_id is not None:
            _index_discard(self._by_char, entry.character_id, entry.socket_id)

    def _character_gone(self, character_id: int | None, now_ms: int) -> bool:
        if character_id is None:
            return False
        return not self._live(self._by_char.get(character_id), now_ms)

    async def put(self, entry: ConnEntry, *, now_ms: int, ttl_ms: int) -> PutResult:
        old = self._slots.get(entry.socket_id)
        previous = old.entry if old is not None else None
        if previous is not None:
            self._unindex(previous)
        self._slots[entry.socket_id] = _Slot(entry, now_ms + ttl_ms)
        _index_add(self._by_user, entry.user_id, entry.socket_id)
        if entry.zone is not None:
            _index_add(self._by_zone, entry.zone, entry.socket_id)
        if entry.character_id is not None:
            _index_add(self._by_char, entry.character_id, entry.socket_id)
        left = (
            previous is not None
            and previous.character_id != entry.character_id
            and self._character_gone(previous.character_id, now_ms)
        )
        return PutResult(previous, left)

    async def put_many(self, entries: Sequence[ConnEntry], *, now_ms: int, ttl_ms: int) -> None:
        for entry in entries:
            await self.put(entry, now_ms=now_ms, ttl_ms=ttl_ms)

    async def put_connected(self, entry: ConnEntry, *, now_ms: int, ttl_ms: int) -> tuple[str, str]:
        await self.put(entry, now_ms=now_ms, ttl_ms=ttl_ms)
        return await self.user_status(entry.user_id, now_ms=now_ms)

    async def user_left(self, user_id: int, seen_ms: int, *, now_ms: int) -> tuple[str, str]:
        await self.set_last_seen(user_id, seen_ms)
        return await self.user_status(user_id, now_ms=now_ms)

    async def remove(
        self, socket_id: str, *, now_ms: int, expired_only: bool = False
    ) -> Removal | None:
        slot = self._slots.get(socket_id)
        if slot is None or (expired_only and slot.expiry > now_ms):
            return None
        del self._slots[socket_id]
        self._unindex(slot.entry)
        return Removal(slot.entry, self._character_gone(slot.entry.character_id, now_ms))

    async def disconnect(
        self, socket_id: str, *, now_ms: int
    ) -> tuple[Removal, tuple[str, str]] | None:
        removal = await self.remove(socket_id, now_ms=now_ms)
        if removal is None:
            return None
        entry = removal.entry
        return removal, await self.user_left(entry.user_id, max(entry.active_at, 0), now_ms=now_ms)

    async def remove_many(self, socket_ids: Sequence[str], *, now_ms: int) -> list[Removal | None]:
        return [await self.remove(sid, now_ms=now_ms) for sid in socket_ids]

    async def expired(self, *, now_ms: int, limit: int = 500) -> list[str]:
        due = sorted((s.expiry, sid) for sid, s in self._slots.items() if s.expiry <= now_ms)
        return [sid for _, sid in due[:limit]]

    async def user_status(self, user_id: int, *, now_ms: int) -> tuple[str, str]:
        live = self._live(self._by_user.get(user_id), now_ms)
        new = status_of(len(live), sum(1 for e in live if not e.away))
        previous = self._status.get(user_id, OFFLINE)
        if new == OFFLINE:
            self._status.pop(user_id, None)
        else:
            self._status[user_id] = new
        return previous, new

    async def user_status_many(
        self, user_ids: Sequence[int], *, now_ms: int
    ) -> dict[int, tuple[str, str]]:
        return {uid: await self.user_status(uid, now_ms=now_ms) for uid in dict.fromkeys(user_ids)}

    async def entries_for_users(
        self, user_ids: Sequence[int], *, now_ms: int
    ) -> dict[int, list[ConnEntry]]:
        return {uid: self._live(self._by_user.get(uid), now_ms) for uid in user_ids}

    async def entries_in_zone(self, zone: str, *, now_ms: int) -> list[ConnEntry]:
        return self._live(self._by_zone.get(zone), now_ms)

    async def last_seen(self, user_ids: Sequence[int]) -> dict[int, int]:
        return {uid: self._seen[uid] for uid in user_ids if uid in self._seen}

    async def set_last_seen(self, user_id: int, at_ms: int) -> None:
        self._seen[user_id] = at_ms

    async def set_last_seen_many(self, seen: dict[int, int]) -> None:
        self._seen.update(seen)

    async def push_activity(
        self,
        user_id: int,
        activity: dict[str, Any],
        *,
        keep: int = ACTIVITY_KEEP,
        ttl_s: int = ACTIVITY_TTL_S,
    ) -> None:
        raw = orjson.dumps(activity)  # same serialisation (and errors) as Redis
        kept = self._kept_activities(user_id) or deque()
        kept.appendleft(raw)
        while len(kept) > keep:
            kept.pop()
        self._activity[user_id] = (kept, time.monotonic() + ttl_s)

    async def push_activities(self, items: Sequence[tuple[int, dict[str, Any]]]) -> None:
        for user_id, activity in items:
            await self.push_activity(user_id, activity)

    async def activities(self, user_id: int) -> list[dict[str, Any]]:
        return [orjson.loads(raw) for raw in self._kept_activities(user_id) or ()]

    def _kept_activities(self, user_id: int) -> deque[bytes] | None:
        kept = self._activity.get(user_id)
        if kept is None:
            return None
        if time.monotonic() >= kept[1]:
            del self._activity[user_id]
            return None
        return kept[0]

    async def count_entries(self, *, now_ms: int) -> int:
        return sum(1 for slot in self._slots.values() if now_ms < slot.expiry)
