"""Presence across every server process (PROTOCOL.md §5.5).

Each connection has an entry in the presence store, refreshed by its process every
``AETURNIS_PRESENCE_REFRESH_S`` and expiring ``AETURNIS_PRESENCE_TTL_S`` after the last refresh.
Nothing depends on a connection's ``disconnect`` running: every process sweeps expired entries,
so the entries of a killed process disappear within the TTL and their zones get
``character:offline``. A user's status is recomputed and swapped atomically in the store, so each
change is announced (``presence:changed`` to the guild room) by exactly one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from django.conf import settings

from realtime.core.clock import now_ms
from realtime.core.errors import ServiceUnavailable
from realtime.core.loops import repeat
from realtime.fanout import rooms
from realtime.fanout.broadcast import Broadcast
from realtime.state.playing import Playing
from realtime.state.presence.store import (
    OFFLINE,
    ConnEntry,
    PresenceStore,
    status_of_entries,
)

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 500
# Activities are written behind, at most this long after they happened, in one round trip.
ACTIVITY_FLUSH_S = 0.1
ACTIVITY_BUFFER_MAX = 10_000


class Connection(Protocol):
    """What presence needs of a connection (``realtime.connection.session.Session``)."""

    socket_id: str
    codec_name: str
    ip: str
    away: bool
    last_activity: float  # time.monotonic() of the last client event
    close_code: int | None
    playing: Playing | None

    @property
    def user_id(self) -> int: ...


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)


class Presence:
    """Presence of this process's connections, through a store shared with other processes."""

    def __init__(self, *, store: PresenceStore, broadcast: Broadcast, process: str) -> None:
        self.store = store
        self.broadcast = broadcast
        self.process = process
        self._connections: dict[str, Connection] = {}
        self._last_refresh = 0.0
        self._activities: list[tuple[int, dict[str, Any]]] = []
        self._activities_pending = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------------

    @staticmethod
    def tick_seconds() -> float:
        away_after = float(settings.AETURNIS_AWAY_AFTER_S)
        return max(0.2, min(float(settings.AETURNIS_PRESENCE_REFRESH_S), away_after / 10))

    async def run(self) -> None:
        """The process's presence loop (the runtime runs and cancels it)."""
        await repeat(self.tick_seconds, self.tick, "presence tick")

    async def tick(self) -> None:
        """Mark idle connections away, refresh this process's entries when due, sweep."""
        await self._mark_idle()
        loop_now = time.monotonic()
        if loop_now - self._last_refresh >= settings.AETURNIS_PRESENCE_REFRESH_S:
            self._last_refresh = loop_now
            entries = [self.entry(s) for s in self._tracked()]
            if entries:
                await self.store.put_many(entries, now_ms=now_ms(), ttl_ms=self._ttl_ms())
        await self.sweep()

    def resync(self) -> None:
        """The store may have lost or missed entries (Redis was unavailable or restarted):
        write every entry of this process again on the next tick."""
        self._last_refresh = 0.0

    # --- connection events --------------------------------------------------------------

    def entry(self, session: Connection) -> ConnEntry:
        playing = session.playing
        idle_ms = int((time.monotonic() - session.last_activity) * 1000)
        return ConnEntry(
            socket_id=session.socket_id,
            user_id=session.user_id,
            character_id=playing.character_id if playing else None,
            character_name=playing.name if playing else "",
            zone=playing.zone if playing else None,
            guild_id=playing.guild_id if playing else None,
            away=session.away,
            active_at=now_ms() - max(0, idle_ms),
            process=self.process,
        )

    # The connection events are best effort: with the store unavailable (Redis down) the
    # connection goes on, the outage was logged once, and ``resync`` writes the entries again.

    async def connected(self, session: Connection) -> None:
        self._connections[session.socket_id] = session
        with contextlib.suppress(ServiceUnavailable):
            self.record(session, "connect", {"ip": session.ip, "transport": session.codec_name})
            entry = self.entry(session)
            previous, current = await self.store.put_connected(
                entry, now_ms=now_ms(), ttl_ms=self._ttl_ms()
            )
            if previous != current:
                await self._announce(entry, current)

    async def playing_changed(self, session: Connection) -> None:
        """The connection selected a character or changed zone; announce a character it left."""
        with contextlib.suppress(ServiceUnavailable):
            await self._playing_changed(session)

    async def _playing_changed(self, session: Connection) -> None:
        entry = self.entry(session)
        result = await self.store.put(entry, now_ms=now_ms(), ttl_ms=self._ttl_ms())
        if result.character_left and result.previous is not None:
            await self._character_offline(result.previous)
        previous_guild = result.previous.guild_id if result.previous else None
        if entry.guild_id is not None and entry.guild_id != previous_guild:
            # A guild sees its member arrive when the member's character is played.
            _, current = await self.store.user_status(session.user_id, now_ms=now_ms())
            await self._announce(entry, current)

    async def disconnected(self, session: Connection) -> None:
        self._connections.pop(session.socket_id, None)
        with contextlib.suppress(ServiceUnavailable):
            # The removal and the user's status in one round trip; announced as ``_gone`` does.
            ended = await self.store.disconnect(session.socket_id, now_ms=now_ms())
            if ended is None:
                return
            removal, status = ended
            self.record(session, "disconnect", {"code": session.close_code})
            await self._announce_end(removal.entry, removal.character_left, status)

    async def wake(self, session: Connection) -> None:
        """An away connection sent an event: it is active again."""
        with contextlib.suppress(ServiceUnavailable):
            entry = self.entry(session)
            await self.store.put(entry, now_ms=now_ms(), ttl_ms=self._ttl_ms())
            await self._status(session.user_id, entry)

    async def leave_all(self) -> None:
        """Graceful shutdown: remove this process's entries now, not at their expiry, in a few
        pipelined round trips however many connections there are, and announce who left."""
        tracked = self._tracked()
        self._connections.clear()
        if not tracked:
            return
        now = now_ms()
        try:
            removals = await self.store.remove_many([s.socket_id for s in tracked], now_ms=now)
            gone = [r for r in removals if r is not None]
            await self.store.set_last_seen_many(
                {r.entry.user_id: max(r.entry.active_at, 0) for r in gone}
            )
            statuses = await self.store.user_status_many(
                [r.entry.user_id for r in gone], now_ms=now
            )
            events = [self._offline_event(r.entry) for r in gone if r.character_left]
            for r in gone:
                previous, current = statuses.get(r.entry.user_id, (OFFLINE, OFFLINE))
                if previous != current and r.entry.guild_id is not None:
                    events.append(self._changed_event(r.entry, current))
                    statuses[r.entry.user_id] = (current, current)  # announced once
            await self.broadcast.to_rooms([e for e in events if e is not None])
        except ServiceUnavailable:
            return

    async def sweep(self) -> int:
        """Remove expired entries (of any process); each is claimed by exactly one process."""
        count = 0
        for socket_id in await self.store.expired(now_ms=now_ms(), limit=SWEEP_LIMIT):
            removal = await self.store.remove(socket_id, now_ms=now_ms(), expired_only=True)
            if removal is not None:
                logger.info("presence entry %s of %s expired", socket_id, removal.entry.process)
                await self._gone(removal.entry, removal.character_left)
                count += 1
        return count

    def record(self, session: Connection, event: str, detail: dict[str, Any]) -> None:
        """Keep one activity in the user's recent activity (last 100, 24 h); best effort.

        Written behind: what a process records within ``ACTIVITY_FLUSH_S`` goes to the store in
        one round trip (one per chat message cost more CPU than the message's publish)."""
        if not session.user_id:
            return
        if len(self._activities) >= ACTIVITY_BUFFER_MAX:
            return  # the store has not taken them for a while (Redis down): drop, not grow
        self._activities.append(
            (session.user_id, {"event": event, "at": now_ms(), "detail": detail})
        )
        self._activities_pending.set()

    async def write_activities(self) -> None:
        """The activity write-behind loop (the runtime runs and cancels it)."""
        while True:
            await self._activities_pending.wait()
            await asyncio.sleep(ACTIVITY_FLUSH_S)
            try:
                await self.flush_activities()
            except Exception:
                logger.exception("writing activities failed")

    async def flush_activities(self) -> None:
        """Write the recorded activities now (graceful shutdown, a read of them)."""
        items, self._activities = self._activities, []
        self._activities_pending.clear()
        if items:
            with contextlib.suppress(ServiceUnavailable):
                await self.store.push_activities(items)

    async def activities(self, user_id: int) -> list[dict[str, Any]]:
        """The user's recent activity, newest first, with what this process recorded."""
        await self.flush_activities()
        return await self.store.activities(user_id)

    # --- queries ------------------------------------------------------------------------

    async def state_of(self, user_ids: Sequence[int]) -> dict[str, dict[str, Any]]:
        """``presence:state`` users: every id asked for, offline when unknown."""
        entries = await self.store.entries_for_users(user_ids, now_ms=now_ms())
        seen = await self.store.last_seen(user_ids)
        users: dict[str, dict[str, Any]] = {}
        for uid in user_ids:
            mine = entries.get(uid, [])
            playing = sorted((e for e in mine if e.character_id), key=lambda e: e.active_at)
            latest = playing[-1] if playing else None
            users[str(uid)] = {
                "status": status_of_entries(mine),
                "lastSeen": max((e.active_at for e in mine), default=seen.get(uid)),
                "characterId": _id(latest.character_id) if latest else None,
                "zone": latest.zone if latest else None,
            }
        return users

    async def zone_listing(self, zone: str) -> list[dict[str, Any]]:
        """The characters in ``zone`` (one row per character, however many connections)."""
        by_character: dict[int, list[ConnEntry]] = {}
        for entry in await self.store.entries_in_zone(zone, now_ms=now_ms()):
            if entry.character_id is not None:
                by_character.setdefault(entry.character_id, []).append(entry)
        return [
            {
                "characterId": str(cid),
                "name": entries[0].character_name,
                "userId": str(entries[0].user_id),
                "status": status_of_entries(entries),
            }
            for cid, entries in sorted(by_character.items(), key=lambda kv: kv[1][0].character_name)
        ]

    # --- internals ----------------------------------------------------------------------

    def _ttl_ms(self) -> int:
        return int(settings.AETURNIS_PRESENCE_TTL_S * 1000)

    def _tracked(self) -> list[Connection]:
        return list(self._connections.values())

    async def _mark_idle(self) -> None:
        away_after = float(settings.AETURNIS_AWAY_AFTER_S)
        loop_now = time.monotonic()
        for session in self._tracked():
            if not session.away and loop_now - session.last_activity >= away_after:
                session.away = True
                entry = self.entry(session)
                await self.store.put(entry, now_ms=now_ms(), ttl_ms=self._ttl_ms())
                await self._status(session.user_id, entry)

    async def _gone(self, entry: ConnEntry, character_left: bool) -> None:
        """An entry was removed (its connection ended, or it expired): ``offline`` to its zone
        when its character has no connection left, its user's last seen and status."""
        status = await self.store.user_left(entry.user_id, max(entry.active_at, 0), now_ms=now_ms())
        await self._announce_end(entry, character_left, status)

    async def _announce_end(
        self, entry: ConnEntry, character_left: bool, status: tuple[str, str]
    ) -> None:
        """What an ended entry tells others: ``offline`` to its zone when its character has no
        connection left, then its user's status when it changed."""
        if character_left:
            await self._character_offline(entry)
        previous, current = status
        if previous != current:
            await self._announce(entry, current)

    def _offline_event(self, entry: ConnEntry) -> tuple[str, str, Any, str] | None:
        # Excluding the connection that left changes nothing for live delivery (it is gone, or
        # out of that zone), but marks the event as its own: a Socket.IO client that recovers
        # that connection is not told that its own character went offline.
        if entry.character_id is None or entry.zone is None:
            return None
        data = {
            "characterId": str(entry.character_id),
            "userId": str(entry.user_id),
            "timestamp": now_ms(),
        }
        return rooms.zone_room(entry.zone), "character:offline", data, entry.socket_id

    def _changed_event(self, entry: ConnEntry, status: str) -> tuple[str, str, Any, str]:
        assert entry.guild_id is not None
        data = {
            "userId": str(entry.user_id),
            "characterId": _id(entry.character_id),
            "status": status,
            "timestamp": now_ms(),
        }
        return rooms.guild_room(entry.guild_id), "presence:changed", data, entry.socket_id

    async def _character_offline(self, entry: ConnEntry) -> None:
        event = self._offline_event(entry)
        if event is not None:
            room, name, data, exclude = event
            await self.broadcast.to_room(room, name, data, exclude=exclude)

    async def _status(self, user_id: int, entry: ConnEntry) -> None:
        """Recompute the user's status; announce it to the guild room when it changed."""
        previous, current = await self.store.user_status(user_id, now_ms=now_ms())
        if previous != current:
            await self._announce(entry, current)

    async def _announce(self, entry: ConnEntry, status: str) -> None:
        if entry.guild_id is None:
            return
        room, name, data, exclude = self._changed_event(entry, status)
        await self.broadcast.to_room(room, name, data, exclude=exclude)
