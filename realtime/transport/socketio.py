"""The Socket.IO v4 transport at ``/socket.io/`` over WebSocket (PROTOCOL.md §1.2): a thin
consumer.

A WebSocket without a ``sid`` starts an Engine.IO session of its own: the open packet (no
upgrades), then every frame goes to its ``SioConnection``. A WebSocket that names the ``sid`` of
a long-polling session of this process is an upgrade (anything else naming a sid is refused
before accept): it answers the probe ``2probe`` with ``3probe`` and nothing else, and on ``5``
takes the session over — the same ``Session`` with its rooms, acks in flight and queued
frames, which the polling buffer hands over first, in order. Polling requests for that sid are
refused from then on. A probe that sends anything else, or no ``5`` within
``UPGRADE_TIMEOUT_S``, is closed and polling goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.exceptions import StopConsumer
from django.conf import settings

from realtime.auth.sources import origin_allowed, selected_subprotocol
from realtime.connection.session import Session
from realtime.core import logs
from realtime.core.constants import RX_KEY, CloseCode, CloseReason
from realtime.protocol.engineio import EIO_PING, EIO_PONG, EIO_UPGRADE, PROBE, open_packet
from realtime.protocol.socketio import SOCKETIO
from realtime.runtime.runtime import Runtime
from realtime.transport.app import app_runtime
from realtime.transport.consumer import DirectConsumer
from realtime.transport.native import frame_size
from realtime.transport.polling import PollingSession, PollingSessions, new_sid
from realtime.transport.sio_connection import SioConnection

logger = logging.getLogger(__name__)

# A WebSocket that answered the probe must switch (``5``) within this time (Engine.IO's
# upgradeTimeout).
UPGRADE_TIMEOUT_S = 10.0


def handshake_query(scope: dict[str, Any]) -> dict[str, str] | None:
    """The query of an acceptable Engine.IO WebSocket request, or None."""
    raw = bytes(scope.get("query_string") or b"").decode("latin-1")
    query = {key: values[0] for key, values in parse_qs(raw).items()}
    if query.get("EIO") != "4" or query.get("transport", "websocket") != "websocket":
        return None
    return query


class SocketIOConsumer(DirectConsumer):
    # The Engine.IO session this socket carries (its own, or a polling one it took over).
    connection: SioConnection | None = None
    # The polling session this socket is upgrading (or has upgraded).
    polling: PollingSession | None = None
    _upgrade_timer: asyncio.TimerHandle | None = None

    # --- handshake ------------------------------------------------------------------------

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        query = handshake_query(self.scope)
        if query is None or not origin_allowed(self.scope):
            await self.send({"type": "websocket.close"})  # an HTTP 403 before accept
            return
        runtime = await app_runtime()
        if "sid" in query:
            await self._probe(runtime, query["sid"])
            return
        if runtime.shutting_down:
            # Arrived after SIGTERM: refusing the handshake is a transport error to
            # socket.io-client, which then goes on reconnecting until a live process answers.
            await self.send({"type": "websocket.close"})
            return
        session = Session(scope=self.scope, codec=SOCKETIO, send=self.send, runtime=runtime)
        connection = self.connection = SioConnection(session, new_sid())
        logs.bind(socket_id=session.socket_id)
        await self.send(
            {"type": "websocket.accept", "subprotocol": selected_subprotocol(self.scope)}
        )
        session.send_text(
            open_packet(
                connection.sid,
                ping_interval_ms=settings.AETURNIS_SIO_PING_INTERVAL_MS,
                ping_timeout_ms=settings.AETURNIS_SIO_PING_TIMEOUT_MS,
                max_payload=settings.AETURNIS_SIO_MAX_PAYLOAD_BYTES,
            )
        )
        connection.start()

    # --- upgrade from long-polling ----------------------------------------------------------

    async def _probe(self, runtime: Runtime, sid: str) -> None:
        polling = runtime.get(PollingSessions).find(sid)
        if polling is None or polling.probing or polling.upgraded or polling.ended:
            # An unknown sid (or another process's), or a second WebSocket for one session.
            await self.send({"type": "websocket.close"})
            return
        polling.probing = True
        self.polling = polling
        polling.bind_logs()
        await self.send(
            {"type": "websocket.accept", "subprotocol": selected_subprotocol(self.scope)}
        )
        self._upgrade_timer = asyncio.get_running_loop().call_later(
            UPGRADE_TIMEOUT_S, self._upgrade_expired
        )

    async def _probe_frame(self, polling: PollingSession, text: str | None) -> None:
        if text == EIO_PING + PROBE and not polling.upgrading and not polling.ended:
            await self.send({"type": "websocket.send", "text": EIO_PONG + PROBE})
            polling.begin_upgrade()
        elif text == EIO_UPGRADE and not polling.ended:
            self._take_over(polling)
        else:  # anything else before the switch: this socket is given up, polling goes on
            await self._give_up_probe()

    def _take_over(self, polling: PollingSession) -> None:
        """``5``: from now on this socket carries the session; what waited for a GET first."""
        if self._upgrade_timer is not None:
            self._upgrade_timer.cancel()
        outbound = polling.outbound
        code, reason = outbound.close_code, outbound.close_reason
        polling.upgraded = True
        session = polling.connection.session
        session.use_socket(self.scope, self.send, outbound.handover())
        if code is not None:  # it was closed meanwhile: the close goes out here, with its code
            session.outbound.close(code, reason)
        self.connection = polling.connection

    def _upgrade_expired(self) -> None:
        self._upgrade_timer = None
        if self.connection is None:
            asyncio.get_running_loop().create_task(self._give_up_probe())

    async def _give_up_probe(self) -> None:
        if self.polling is not None and self.connection is None:
            self.polling.abort_upgrade()
        await self.send({"type": "websocket.close", "code": int(CloseCode.NORMAL)})

    # --- frames ---------------------------------------------------------------------------

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        connection = self.connection
        if connection is None:
            if self.polling is not None:
                await self._probe_frame(self.polling, message.get("text"))
            return
        session = connection.session
        if session.closed:
            return
        if frame_size(message) > settings.AETURNIS_SIO_MAX_PAYLOAD_BYTES:
            session.close(CloseCode.MESSAGE_TOO_BIG, CloseReason.MESSAGE_TOO_BIG, farewell=False)
            return
        connection.received_at = message.get(RX_KEY) or time.time()
        text = message.get("text")
        if text is not None:
            await connection.receive_text(text)
        else:
            await connection.receive_binary(bytes(message.get("bytes") or b""))

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self._upgrade_timer is not None:
            self._upgrade_timer.cancel()
        if self.polling is not None:
            if self.connection is not None:
                await self.polling.end()
            else:
                self.polling.abort_upgrade()
        elif self.connection is not None:
            await self.connection.end()
        raise StopConsumer()
