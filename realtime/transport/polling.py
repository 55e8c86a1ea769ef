"""Engine.IO sessions that started with HTTP long-polling, held by the process that opened them.

A polling session is a ``SioConnection`` whose session's outbound is a ``PollingOutbound``,
plus what the HTTP requests of its ``sid`` need to know: whether a GET is held, whether a POST
is being handled, whether a WebSocket is taking it over. ``PollingSessions`` is this process's
registry of them (one per runtime, added by ``install``); a request naming a sid it does not
hold (never issued, ended, or issued by another process) is refused, so a load balancer that
sends a request to the wrong process gets a clean Engine.IO error, never a hang.

A session ends (``PollingSession.end``: out of the registry, ``close_session``) when a GET has
taken its close packet, when no GET comes for it within ``AETURNIS_CLOSE_GRACE_S`` after the
close, after a protocol error, or, once upgraded, when its WebSocket goes away. A client that
vanishes stops answering pings: the ping timeout closes the session, and the grace period ends
it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from realtime.connection.polling import PollingOutbound
from realtime.core import logs
from realtime.protocol.engineio import EIO_CLOSE, EIO_NOOP
from realtime.runtime.runtime import Runtime
from realtime.transport.sio_connection import SioConnection

logger = logging.getLogger(__name__)

# A GET answer carries at most this many packets: python-engineio drops the connection on a
# payload of more than 16. The rest wait for the next GET.
MAX_PACKETS_PER_GET = 16

Receive = Callable[[], Awaitable[dict[str, Any]]]


def new_sid() -> str:
    """A secret Engine.IO sid, ``<node id>.<secret>``: the prefix routes polling requests to
    this process (deploy/nginx), the secret authorises them."""
    return f"{settings.AETURNIS_NODE_ID}.{secrets.token_urlsafe(15)}"


class PollingSessions:
    """This process's polling sessions, by sid."""

    def __init__(self) -> None:
        self._by_sid: dict[str, PollingSession] = {}

    def add(self, polling: PollingSession) -> None:
        self._by_sid[polling.sid] = polling

    def find(self, sid: str) -> PollingSession | None:
        return self._by_sid.get(sid)

    def remove(self, sid: str) -> None:
        self._by_sid.pop(sid, None)

    def __len__(self) -> int:
        return len(self._by_sid)


def install(runtime: Runtime) -> None:
    runtime.provide(PollingSessions, PollingSessions())


class PollingSession:
    """One polling Engine.IO session, as its HTTP requests (and an upgrading WebSocket) see it."""

    def __init__(
        self, connection: SioConnection, outbound: PollingOutbound, registry: PollingSessions
    ) -> None:
        self.connection = connection
        self.outbound = outbound
        self._registry = registry
        self.getting = False  # a GET is held
        self.posting = False  # a POST is being handled
        self.probing = False  # a WebSocket named this sid and may take the session over
        self.upgrading = False  # that WebSocket answered the probe: GETs get a noop at once
        self.upgraded = False  # the WebSocket carries the session; polling is refused
        self.ended = False
        self._grace: asyncio.TimerHandle | None = None
        outbound.on_close = self._closing
        registry.add(self)

    @property
    def sid(self) -> str:
        return self.connection.sid

    def bind_logs(self) -> None:
        logs.bind(socket_id=self.connection.session.socket_id)

    # --- GET ------------------------------------------------------------------------------------

    async def poll(self, receive: Receive) -> list[str] | None:
        """The packets for one GET: what is waiting (at most ``MAX_PACKETS_PER_GET``), else
        held until something comes or the ping interval passed (then a noop). A noop at once
        while an upgrade is under way, the close once the session is over. None when the
        client went away meanwhile (nothing was taken)."""
        outbound = self.outbound
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.AETURNIS_SIO_PING_INTERVAL_MS / 1000
        gone = loop.create_task(_disconnected(receive))
        try:
            while True:
                packets = outbound.take(MAX_PACKETS_PER_GET)
                if packets:
                    return packets
                if outbound.dead:
                    return [EIO_CLOSE]
                remaining = deadline - loop.time()
                if self.upgrading or outbound.sealed or remaining <= 0:
                    return [EIO_NOOP]
                waiting = loop.create_task(outbound.wait(remaining))
                await asyncio.wait((waiting, gone), return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                if gone.done():
                    return None
        finally:
            gone.cancel()

    def took(self, packets: list[str]) -> bool:
        """Whether ``packets`` (a GET answer) ended the session: its close went out."""
        return bool(packets) and packets[-1] == EIO_CLOSE

    # --- upgrade --------------------------------------------------------------------------------

    def begin_upgrade(self) -> None:
        """The probe was answered: a held GET answers a noop, so the client can pause polling."""
        self.upgrading = True
        self.outbound.nudge()

    def abort_upgrade(self) -> None:
        """The probing WebSocket failed or left before switching: polling goes on."""
        self.probing = self.upgrading = False

    # --- end ------------------------------------------------------------------------------------

    def _closing(self) -> None:
        """The session closed: the next GET takes the close packet and ends it; without a GET
        within the grace period it ends anyway."""
        if self._grace is None and not self.ended:
            self._grace = asyncio.get_running_loop().call_later(
                settings.AETURNIS_CLOSE_GRACE_S, self._grace_over
            )

    def _grace_over(self) -> None:
        self._grace = None
        if not self.upgraded:
            asyncio.get_running_loop().create_task(self.end())

    async def end(self) -> None:
        """Out of the registry; a held GET answers the close; the session ends (idempotent)."""
        if self.ended:
            return
        self.ended = True
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        self._registry.remove(self.sid)
        self.outbound.kill()
        try:
            await self.connection.end()
        except Exception:
            logger.exception("ending polling session %s failed", self.connection.session.socket_id)


async def _disconnected(receive: Receive) -> None:
    """Returns when the client of this HTTP request has gone away."""
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return
