"""Requests of one connection that wait on the database, kept out of the way of the others.

A connection's frames used to be handled strictly one after the other, so a ``ping`` or a
``character:move`` sent after a ``chat:message`` waited as long as that message's database
write — seconds, when PostgreSQL was slow. Now requests that need the database go to the
connection's ``SlowLane`` and are handled there in order, while the others are handled as they
arrive. Requests that change what the connection is (``character:select``,
``character:change_zone``) are *barriers*: until one is done, every later request of the
connection waits behind it, so a move never overtakes the select it depends on.

The lane is bounded: when a connection has ``SLOW_LANE_LIMIT`` requests waiting, reading its
next frame waits until one is done (the socket's own flow control then slows the client), as it
did when every request was handled in turn. Nothing is refused for being sent quickly.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]

# Requests one connection may have waiting on the database: past it, its reader waits.
SLOW_LANE_LIMIT = 32


class SlowLane:
    """One connection's queue of requests that wait on the database, handled in order."""

    __slots__ = ("_barriers", "_closed", "_jobs", "_room", "_task")

    def __init__(self) -> None:
        # Created when a job is queued and dropped when the lane empties: an idle connection
        # holds no deque (760 bytes each).
        self._jobs: deque[tuple[Job, bool]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._barriers = 0
        # Set while the lane has room; created the first time it fills.
        self._room: asyncio.Event | None = None
        self._closed = False

    @property
    def blocking(self) -> bool:
        """Whether a barrier is waiting or running: every request must queue behind it."""
        return self._barriers > 0

    async def submit(self, job: Job, *, barrier: bool = False) -> bool:
        """Queue ``job``, once the lane has room; False (not queued) when the lane was closed
        meanwhile (the connection is gone)."""
        while self._jobs is not None and len(self._jobs) >= SLOW_LANE_LIMIT and not self._closed:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()
        if self._closed:
            return False
        if self._jobs is None:
            self._jobs = deque()
        self._jobs.append((job, barrier))
        if barrier:
            self._barriers += 1
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return True

    async def _run(self) -> None:
        try:
            while self._jobs:
                job, barrier = self._jobs.popleft()
                if not self._jobs:
                    self._jobs = None
                if self._room is not None:
                    self._room.set()
                try:
                    await job()
                except Exception:  # the dispatcher answers every request; this is a bug
                    logger.exception("a queued request failed")
                finally:
                    if barrier:
                        self._barriers -= 1
        finally:
            self._task = None

    def close(self) -> None:
        """The connection is gone: what waits is dropped, what runs is cancelled."""
        self._closed = True
        self._jobs = None
        self._barriers = 0
        if self._room is not None:
            self._room.set()
        if self._task is not None:
            self._task.cancel()
            self._task = None
