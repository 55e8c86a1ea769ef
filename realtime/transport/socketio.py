"""The Socket.IO v4 transport at ``/socket.io/`` (PROTOCOL.md §1.2): a thin consumer.

It speaks Engine.IO 4 over WebSocket only (no polling, no upgrades): the open packet,
server-driven pings with a disconnect when a pong is late, and Socket.IO 5 packets on the
default namespace. Events and acks go to the same dispatch table as the native transport;
the Socket.IO codec frames what the shared session sends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from django.conf import settings

from realtime.auth.sources import origin_allowed, selected_subprotocol, token_from_handshake
from realtime.auth.tokens import AuthError
from realtime.connection.session import Session
from realtime.core import logs, metrics
from realtime.core.constants import CloseCode, CloseReason
from realtime.core.errors import ErrorCode
from realtime.handlers.dispatch import dispatch
from realtime.handlers.lifecycle import close_session, open_session
from realtime.protocol.base import FrameError, Inbound
from realtime.protocol.socketio import (
    BINARY_ACK,
    BINARY_EVENT,
    CONNECT,
    DISCONNECT,
    EIO_CLOSE,
    EIO_MESSAGE,
    EIO_PING,
    EIO_PONG,
    EVENT,
    SOCKETIO,
    SioPacket,
    connect_error_packet,
    connect_packet,
    decode_engine,
    decode_socketio,
    open_packet,
)
from realtime.transport.app import app_runtime
from realtime.transport.native import NO_LAYER, frame_size

logger = logging.getLogger(__name__)

# Refusals after which the connection is closed at once; after the others the client may send
# CONNECT again (with another token) until the handshake timer runs out.
FINAL_REFUSALS = frozenset(
    {ErrorCode.USER_BANNED, ErrorCode.AUTH_RATE_LIMITED, ErrorCode.CONNECTION_RATE_LIMITED}
)


def handshake_query_ok(scope: dict[str, Any]) -> bool:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return query.get("EIO") == ["4"] and query.get("transport", ["websocket"]) == ["websocket"]


class SocketIOConsumer(AsyncConsumer):  # type: ignore[misc]
    channel_layer_alias = NO_LAYER

    session: Session | None = None
    connected = False
    _handshake_timer: asyncio.TimerHandle | None = None
    _pinger: asyncio.Task[None] | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is not None:
            await handler(message)

    # --- handshake ------------------------------------------------------------------------

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        if not handshake_query_ok(self.scope) or not origin_allowed(self.scope):
            await self.send({"type": "websocket.close"})  # an HTTP 403 before accept
            return
        runtime = await app_runtime()
        if runtime.shutting_down:
            # Arrived after SIGTERM: refusing the handshake is a transport error to
            # socket.io-client, which then goes on reconnecting until a live process answers.
            await self.send({"type": "websocket.close"})
            return
        session = self.session = Session(
            scope=self.scope, codec=SOCKETIO, send=self.send, runtime=runtime
        )
        logs.bind(socket_id=session.socket_id)
        await self.send(
            {"type": "websocket.accept", "subprotocol": selected_subprotocol(self.scope)}
        )
        session.send_text(
            open_packet(
                session.socket_id,
                ping_interval_ms=settings.AETURNIS_SIO_PING_INTERVAL_MS,
                ping_timeout_ms=settings.AETURNIS_SIO_PING_TIMEOUT_MS,
                max_payload=settings.AETURNIS_MAX_FRAME_BYTES,
            )
        )
        self._arm_handshake_timer()
        self._pong = asyncio.Event()
        self._pinger = asyncio.get_running_loop().create_task(self._ping_loop(session))

    def _arm_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self._handshake_timer = asyncio.get_running_loop().call_later(
            settings.AETURNIS_AUTH_FRAME_TIMEOUT_S, self._handshake_expired
        )

    def _handshake_expired(self) -> None:
        session = self.session
        if session is not None and not self.connected and not session.closed:
            session.close(CloseCode.UNAUTHENTICATED, ErrorCode.AUTH_REQUIRED.value, farewell=False)

    async def _connect(self, session: Session, packet: SioPacket) -> None:
        if packet.namespace != "/":
            session.send_text(connect_error_packet("Invalid namespace", None, packet.namespace))
            return
        if self.connected:
            session.send_text(connect_packet(session.socket_id))
            return
        auth = packet.data if isinstance(packet.data, dict) else {}
        token = auth.get("token") if isinstance(auth.get("token"), str) else None
        try:
            await session.check_connect()
            await session.admit(token or token_from_handshake(self.scope))
        except AuthError as exc:
            self._refuse(session, exc.code)
            return
        self.connected = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        session.send_text(connect_packet(session.socket_id))
        await open_session(session)

    def _refuse(self, session: Session, code: ErrorCode) -> None:
        message, close_code = session.refuse_frames(code)
        session.send_text(connect_error_packet(message, code.value))
        if code in FINAL_REFUSALS:
            session.close(close_code, code.value, farewell=False)
        else:
            self._arm_handshake_timer()

    # --- Engine.IO heartbeat --------------------------------------------------------------

    async def _ping_loop(self, session: Session) -> None:
        """As Engine.IO servers do: ping, wait up to pingTimeout for the pong, then wait
        pingInterval before the next ping. A missing pong ends the connection."""
        interval = settings.AETURNIS_SIO_PING_INTERVAL_MS / 1000
        timeout = settings.AETURNIS_SIO_PING_TIMEOUT_MS / 1000
        while not session.closed:
            await asyncio.sleep(interval)
            if session.closed:
                return
            self._pong.clear()
            session.send_text(EIO_PING)
            try:
                await asyncio.wait_for(self._pong.wait(), timeout)
            except TimeoutError:
                logger.info("socket.io client %s missed its pong", session.socket_id)
                session.close(CloseCode.NORMAL, "PING_TIMEOUT", farewell=False)
                return

    # --- frames ---------------------------------------------------------------------------

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        session = self.session
        if session is None or session.closed:
            return
        if frame_size(message) > settings.AETURNIS_MAX_FRAME_BYTES:
            session.close(CloseCode.MESSAGE_TOO_BIG, CloseReason.MESSAGE_TOO_BIG, farewell=False)
            return
        text = message.get("text")
        if text is None:
            self._bad_frame(session, "Binary packets are not supported")
            return
        try:
            kind, payload = decode_engine(text)
            if kind == EIO_PONG:
                self._pong.set()
                return
            if kind == EIO_CLOSE:
                session.close(CloseCode.NORMAL, "CLIENT_CLOSE", farewell=False)
                return
            if kind != EIO_MESSAGE:
                return  # noop, upgrade probes: nothing to do over a plain WebSocket
            packet = decode_socketio(payload)
        except FrameError as exc:
            self._bad_frame(session, exc.message)
            return
        await self._packet(session, packet)

    async def _packet(self, session: Session, packet: SioPacket) -> None:
        if packet.type == CONNECT:
            await self._connect(session, packet)
        elif packet.type == DISCONNECT:
            session.close(CloseCode.NORMAL, "CLIENT_DISCONNECT", farewell=False)
        elif packet.type in (BINARY_EVENT, BINARY_ACK):
            self._bad_frame(session, "Binary packets are not supported", packet.id)
        elif packet.type == EVENT and packet.namespace == "/" and self.connected:
            await self._event(session, packet)
        elif packet.type == EVENT and self.connected:
            self._bad_frame(session, f"Unknown namespace '{packet.namespace[:50]}'", packet.id)
        # An ACK from the client answers nothing (the server asks for none); events before the
        # handshake are ignored, as Socket.IO servers do.

    async def _event(self, session: Session, packet: SioPacket) -> None:
        args = packet.data if isinstance(packet.data, list) else []
        if len(args) > 2:
            self._bad_frame(session, "Only one argument is supported per event", packet.id)
            return
        inbound = Inbound(event=str(args[0]), data=args[1] if len(args) == 2 else {}, ack=packet.id)
        if inbound.event != "ping":
            await session.touch()
        await dispatch(session, inbound)

    def _bad_frame(self, session: Session, message: str, ack: int | None = None) -> None:
        if not self.connected:
            return
        body = {"code": ErrorCode.BAD_FRAME, "message": message}
        metrics.count_error(ErrorCode.BAD_FRAME)
        if ack is not None:
            session.send_ack(ack, {"ok": False, "error": body})
        else:
            session.send_event("error", body)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        if self._pinger is not None:
            self._pinger.cancel()
        if self.session is not None:
            await close_session(self.session)
        raise StopConsumer()
