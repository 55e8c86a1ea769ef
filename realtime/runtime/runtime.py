"""The per-process realtime runtime: hub, bus, stores and background work, bound to one loop.

Everything below this layer receives the runtime's parts as arguments (the hub, the
``Broadcast``, the stores); nothing looks the runtime up. Features of the layers above add what
they need explicitly, once, before the runtime starts (``realtime.handlers.features.install``):
per-process services (``provide``), background tasks (``add_task``), shutdown steps
(``on_shutdown``) and process-message handlers (``on_process_message``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar, cast

from realtime.core.errors import ServiceUnavailable
from realtime.core.reads import close_reads
from realtime.core.redis_client import close_async_redis, redis_enabled
from realtime.fanout import broadcast as broadcast_module
from realtime.fanout.broadcast import Broadcast, Bus
from realtime.fanout.bus import LocalBus, ProcessHandler, RedisBus
from realtime.fanout.hub import Hub, Member
from realtime.protocol.codecs import CODECS
from realtime.runtime.report import process_counts, report_loop
from realtime.state.live import LiveStore, LocalLiveStore, RedisLiveStore
from realtime.state.positions import PositionWriter
from realtime.state.presence.backend import make_presence_store
from realtime.state.presence.service import Presence
from realtime.state.ratelimit import RateLimiter
from realtime.state.recovery import Recoveries, make_recovery_store

logger = logging.getLogger(__name__)

T = TypeVar("T")
TaskFactory = Callable[["Runtime"], Coroutine[Any, Any, None]]
ShutdownStep = Callable[[], Awaitable[None]]


def process_id() -> str:
    """A name for this server process that is unique across hosts and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Runtime:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.process = process_id()
        self.hub = Hub(CODECS)
        self._process_handlers: dict[str, ProcessHandler] = {}
        self.bus: Bus = (
            RedisBus(self.hub, self._process_message)
            if redis_enabled()
            else LocalBus(self.hub, self._process_message)
        )
        self.broadcast = Broadcast(self.bus)
        self.limiter = RateLimiter()
        self.live: LiveStore = RedisLiveStore() if redis_enabled() else LocalLiveStore()
        self.positions = PositionWriter(self.live)
        self.recoveries = Recoveries(make_recovery_store())
        self.presence = Presence(
            store=make_presence_store(), broadcast=self.broadcast, process=self.process
        )
        if isinstance(self.bus, RedisBus):
            self.bus.on_reconnect = self._after_redis_outage
        # What the handlers do after a Redis outage (re-check revoked tokens; see
        # ``realtime.handlers.features``).
        self.on_reconnect: Callable[[], Awaitable[None]] | None = None
        self._services: dict[type[Any], object] = {}
        self._task_factories: list[TaskFactory] = []
        self._shutdown_steps: list[ShutdownStep] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.shutting_down = False
        self.started_at = loop.time()
        self._connections_changed = asyncio.Event()

    # --- what features add, once, before start ------------------------------------------

    def provide(self, kind: type[T], service: T) -> None:
        """Make ``service`` this process's ``kind`` (e.g. chat's message writer)."""
        self._services[kind] = service

    def get(self, kind: type[T]) -> T:
        """The ``kind`` a feature provided; a missing one is a wiring error."""
        try:
            return cast(T, self._services[kind])
        except KeyError:
            raise LookupError(f"{kind.__name__} was not provided to this runtime") from None

    def add_task(self, factory: TaskFactory) -> None:
        """Run ``factory(runtime)`` for the life of the runtime (cancelled at stop)."""
        self._task_factories.append(factory)

    def on_shutdown(self, step: ShutdownStep) -> None:
        """Run ``step`` at graceful shutdown, after the connections were told and positions
        were written."""
        self._shutdown_steps.append(step)

    def on_process_message(self, action: str, handler: ProcessHandler) -> None:
        """Handle the process-level message ``action`` (sent with ``to_processes``)."""
        self._process_handlers[action] = handler

    # --- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.bus.start()
        broadcast_module.set_process_bus(self.bus)
        self._spawn(self.presence.run())
        self._spawn(self.presence.write_activities())
        self._spawn(self.positions.run())
        self._spawn(self.recoveries.run())
        self._spawn(report_loop(self.process, self.counts, self._connections_changed))
        for factory in self._task_factories:
            self._spawn(factory(self))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(self.loop.create_task(coro))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.bus.stop()
        if broadcast_module._process_bus is self.bus:
            broadcast_module.set_process_bus(None)
        if redis_enabled():
            await close_async_redis()
        await close_reads()

    async def before_exit(self) -> None:
        """Graceful shutdown: every live position written, presence entries removed (and the
        activities recorded meanwhile written), and the Socket.IO recovery records of this
        process's connections expire a window from now."""
        await self.positions.flush_all()
        await self.presence.leave_all()
        await self.presence.flush_activities()
        with contextlib.suppress(ServiceUnavailable):
            await self.recoveries.end_all()

    def connections_changed(self) -> None:
        """A connection opened or closed: report this process's counts soon (stats API)."""
        self._connections_changed.set()

    @property
    def shutdown_steps(self) -> tuple[ShutdownStep, ...]:
        return tuple(self._shutdown_steps)

    def counts(self) -> dict[str, Any]:
        """This process's connections, users and rooms (for the stats API)."""
        started_ms = int((time.time() - (self.loop.time() - self.started_at)) * 1000)
        return process_counts(hub=self.hub, process=self.process, started_at_ms=started_ms)

    async def _after_redis_outage(self) -> None:
        """Redis is back after an outage (and may have lost everything): write this process's
        presence again on the next tick, and end the sockets whose token was revoked while
        control messages could not travel. Rooms were subscribed again by the bus; room
        streams that lost their history start a new epoch on their own."""
        self.presence.resync()
        if self.on_reconnect is not None:
            with contextlib.suppress(ServiceUnavailable):
                await self.on_reconnect()

    def _process_message(self, message: dict[str, Any]) -> None:
        action = str(message.get("action"))
        handler = self._process_handlers.get(action)
        if handler is None:
            logger.warning("unknown process control %r", action)
            return
        try:
            handler(message)
        except Exception:
            logger.exception("process control %r failed", action)

    # --- rooms of local connections ---------------------------------------------------------

    async def join(self, room: str, member: Member) -> None:
        if self.hub.join(room, member):
            await self.bus.room_added(room)

    async def leave(self, room: str, member: Member) -> None:
        if self.hub.leave(room, member):
            await self.bus.room_removed(room)

    async def drop(self, member: Member, rooms: Iterable[str]) -> None:
        """``member`` (in ``rooms``) is gone: forget it, unsubscribe rooms left empty."""
        for room in self.hub.unregister(member, rooms):
            await self.bus.room_removed(room)
