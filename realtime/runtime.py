"""The per-process realtime runtime: the hub, the bus and graceful shutdown, bound to one loop.

Built lazily by the first connection, so that it lives on the server's event loop. Tests run
each on its own loop; a runtime whose loop is gone is replaced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from realtime.bus import LocalBus, RedisBus
from realtime.hub import Hub, Member
from realtime.live import LiveStore, LocalLiveStore, RedisLiveStore
from realtime.presence.service import Presence
from realtime.protocol.codecs import CODECS
from realtime.ratelimit import RateLimiter
from realtime.redis_client import close_async_redis, redis_enabled
from realtime.world import PositionWriter

logger = logging.getLogger(__name__)


async def repeat(
    interval: Callable[[], float], step: Callable[[], Awaitable[object]], what: str
) -> None:
    """Run ``step`` every ``interval()`` seconds until cancelled; a failing step is logged and
    retried next round (a background loop must never die of one bad round)."""
    while True:
        await asyncio.sleep(interval())
        try:
            await step()
        except Exception:
            logger.exception("%s failed; retrying next round", what)


# Feature modules (combat's turn-deadline ticker, ...) register what every process must run.
StartHook = Callable[["Runtime"], Coroutine[Any, Any, None]]
start_hooks: list[StartHook] = []


class Runtime:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.hub = Hub(CODECS)
        self.bus: LocalBus | RedisBus = (
            RedisBus(self.hub) if redis_enabled() else LocalBus(self.hub)
        )
        self.limiter = RateLimiter()
        self.live: LiveStore = RedisLiveStore() if redis_enabled() else LocalLiveStore()
        self.positions = PositionWriter(self.live)
        self.presence = Presence(self)
        # Per-runtime state of feature modules that the runtime itself does not know about
        # (chat's message writer, typing state), keyed by the module that owns it.
        self.ext: dict[str, object] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.shutting_down = False
        self.started_at = loop.time()

    async def start(self) -> None:
        await self.bus.start()
        self._tasks.append(self.loop.create_task(self.presence.run()))
        self._tasks.append(self.loop.create_task(self.positions.run()))
        for hook in start_hooks:
            self._tasks.append(self.loop.create_task(hook(self)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.bus.stop()
        if redis_enabled():
            await close_async_redis()

    async def join(self, room: str, member: Member) -> None:
        if self.hub.join(room, member):
            await self.bus.room_added(room)

    async def leave(self, room: str, member: Member) -> None:
        if self.hub.leave(room, member):
            await self.bus.room_removed(room)

    async def before_exit(self) -> None:
        """Graceful shutdown: presence entries removed now, every live position written."""
        await self.presence.leave_all()
        await self.positions.flush_all()

    async def drop(self, member: Member) -> None:
        for room in self.hub.unregister(member):
            await self.bus.room_removed(room)


_runtime: Runtime | None = None
_lock: asyncio.Lock | None = None
# The loop ``_lock`` was made for. (An asyncio.Lock binds its loop only once a caller has had to
# wait, so the lock itself cannot tell: asking it made every concurrent first caller build a
# runtime of its own.)
_lock_loop: asyncio.AbstractEventLoop | None = None


async def get_runtime() -> Runtime:
    """The runtime of the running loop, started on first use (once, however many ask at once)."""
    global _runtime, _lock, _lock_loop
    loop = asyncio.get_running_loop()
    if _runtime is not None and _runtime.loop is loop:
        return _runtime
    if _lock is None or _lock_loop is not loop:
        _lock, _lock_loop = asyncio.Lock(), loop
    async with _lock:
        if _runtime is None or _runtime.loop is not loop:
            runtime = Runtime(loop)
            await runtime.start()
            _runtime = runtime
            from realtime.shutdown import install_shutdown_handler

            install_shutdown_handler(runtime)
    return _runtime


def current_runtime() -> Runtime | None:
    """The runtime if one is running (for sync code in threads); None in other processes."""
    runtime = _runtime
    if runtime is None or runtime.loop.is_closed():
        return None
    return runtime


async def stop_runtime() -> None:
    """Stop the running loop's runtime, if any (tests; the server process just exits)."""
    global _runtime
    runtime = _runtime
    if runtime is not None and runtime.loop is asyncio.get_running_loop():
        _runtime = None
        await runtime.stop()
