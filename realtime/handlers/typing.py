"""``chat:typing`` state of this process's connections (PROTOCOL.md §5.3).

At most one ``typing: true`` broadcast per user and channel every 2 s; the server sends
``typing: false`` itself ``AETURNIS_TYPING_TIMEOUT_S`` after the last refresh, when the client
says so, and when the connection ends. The state lives in the process that holds the
connection, which is the only one that can see its refreshes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from django.conf import settings

from chat.rules import typing_broadcast_due
from realtime.connection.session import Session
from realtime.core.clock import now_ms
from realtime.core.errors import ServiceUnavailable
from realtime.fanout.broadcast import Broadcast


@dataclass(slots=True)
class Typing:
    room: str
    socket_id: str
    character_id: int | None
    last_true_at: float | None = None
    timer: asyncio.TimerHandle | None = None


class TypingTracker:
    def __init__(self, broadcast: Broadcast) -> None:
        self._broadcast = broadcast
        self._state: dict[tuple[int, str], Typing] = {}

    async def update(self, session: Session, channel: str, room: str, typing: bool) -> None:
        key = (session.user_id, channel)
        entry = self._state.get(key)
        if not typing:
            if entry is not None:
                await self._stop(key, entry)
            return
        character_id = session.playing.character_id if session.playing else None
        if entry is None or entry.room != room:
            if entry is not None:
                await self._stop(key, entry)
            entry = self._state[key] = Typing(room, session.socket_id, character_id)
        if entry.timer is not None:
            entry.timer.cancel()
        loop = asyncio.get_running_loop()
        entry.timer = loop.call_later(
            settings.AETURNIS_TYPING_TIMEOUT_S,
            lambda: loop.create_task(self._expire(key, entry)),
        )
        now = time.monotonic()
        if typing_broadcast_due(entry.last_true_at, now):
            entry.last_true_at = now
            await self._send(key, entry, True)

    async def session_ended(self, session: Session) -> None:
        for key, entry in list(self._state.items()):
            if entry.socket_id == session.socket_id:
                await self._stop(key, entry)

    async def _expire(self, key: tuple[int, str], entry: Typing) -> None:
        if self._state.get(key) is entry:
            await self._stop(key, entry)

    async def _stop(self, key: tuple[int, str], entry: Typing) -> None:
        self._state.pop(key, None)
        if entry.timer is not None:
            entry.timer.cancel()
        if entry.last_true_at is not None:
            await self._send(key, entry, False)

    async def _send(self, key: tuple[int, str], entry: Typing, typing: bool) -> None:
        user_id, channel = key
        data = {
            "characterId": None if entry.character_id is None else str(entry.character_id),
            "userId": str(user_id),
            "channel": channel,
            "typing": typing,
            "timestamp": now_ms(),
        }
        with contextlib.suppress(ServiceUnavailable):  # an indicator is not worth a refusal
            await self._broadcast.to_room(
                entry.room, "chat:typing_status", data, exclude=entry.socket_id, sender=user_id
            )
