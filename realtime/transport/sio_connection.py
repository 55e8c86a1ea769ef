"""One Engine.IO session carrying Socket.IO's default namespace, whatever carries its packets.

The WebSocket consumer (``transport/socketio.py``) and the long-polling HTTP app
(``transport/engineio_http.py``) hand every Engine.IO packet they receive to a
``SioConnection``: text packets to ``receive_text``, binary messages (Socket.IO attachments)
to ``receive_binary``. It runs the server-driven heartbeat and the Socket.IO handshake, and
turns events into the same ``Inbound`` requests as native frames for the shared dispatch
table. What the session sends goes through its outbound, whichever transport that is at the
moment: an upgrade from polling to WebSocket swaps the outbound and keeps this object.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from django.conf import settings

from realtime.auth.sources import token_from_handshake
from realtime.auth.tokens import AuthError
from realtime.connection.session import Session
from realtime.core import metrics
from realtime.core.constants import CloseCode, CloseReason
from realtime.core.errors import ErrorCode, ServiceUnavailable
from realtime.handlers.dispatch import dispatch
from realtime.handlers.lifecycle import close_session
from realtime.handlers.recovery import open_socketio
from realtime.protocol.base import FrameError, Inbound
from realtime.protocol.engineio import (
    BINARY_PREFIX,
    EIO_CLOSE,
    EIO_MESSAGE,
    EIO_PING,
    EIO_PONG,
    binary_from_text,
    decode_engine,
)
from realtime.protocol.socketio import (
    BINARY_ACK,
    BINARY_EVENT,
    CONNECT,
    DISCONNECT,
    EVENT,
    MAX_ATTACHMENTS,
    BinaryPath,
    SioPacket,
    attach_binary,
    connect_error_packet,
    connect_packet,
    decode_socketio,
)

logger = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "/"
# Refusals after which the connection is closed at once; after the others the client may send
# CONNECT again (with another token) until the handshake timer runs out.
FINAL_REFUSALS = frozenset(
    {
        ErrorCode.USER_BANNED,
        ErrorCode.AUTH_RATE_LIMITED,
        ErrorCode.CONNECTION_RATE_LIMITED,
        ErrorCode.SERVICE_UNAVAILABLE,
    }
)


def field_name(path: BinaryPath) -> str:
    """Where a binary value sits in an event's data, named as validation errors name fields.

    ``path`` starts at the event's argument list: index 1 is the data itself (``"data"``).
    """
    return ".".join(str(part) for part in path[1:]) or "data"


class SioConnection:
    """The Engine.IO session ``sid`` and the Socket.IO namespace ``/`` of one ``Session``."""

    def __init__(self, session: Session, sid: str) -> None:
        # When the frame (or HTTP body) being handled reached this process, set by the
        # transport before it hands the packets over (movement is judged on arrival).
        self.received_at = 0.0
        self.session = session
        self.sid = sid  # secret: it authorises every request of a polling session
        self.connected = False  # namespace "/" connected (CONNECT accepted)
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._pong = asyncio.Event()
        # A binary packet waiting for its attachments, those received so far, and how many
        # binary messages of a refused binary packet are still to be skipped.
        self._binary: SioPacket | None = None
        self._attachments: list[bytes] = []
        self._skip = 0

    def start(self) -> None:
        """The open packet went out: expect CONNECT in time, and start pinging."""
        self._arm_handshake_timer()
        self._pinger = asyncio.get_running_loop().create_task(self._ping_loop())

    def stop(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        if self._pinger is not None:
            self._pinger.cancel()

    async def end(self) -> None:
        """The Engine.IO session is over (its transport is gone): end the session."""
        self.stop()
        await close_session(self.session)

    # --- Engine.IO packets --------------------------------------------------------------------

    async def receive_text(self, text: str) -> None:
        """One Engine.IO text packet (or a ``b<base64>`` binary message); anything malformed
        is answered ``BAD_FRAME``."""
        session = self.session
        if session.closed:
            return
        try:
            if text.startswith(BINARY_PREFIX):
                await self.receive_binary(binary_from_text(text))
                return
            kind, payload = decode_engine(text)
        except FrameError as exc:
            self._abandon_binary()
            self._bad_frame(exc.message)
            return
        if kind == EIO_PONG:
            self._pong.set()
        elif kind == EIO_CLOSE:
            session.close(CloseCode.NORMAL, "CLIENT_CLOSE", farewell=False)
        elif kind == EIO_MESSAGE:
            self._abandon_binary()
            await self._message(payload)
        # A ping from the client, a noop or a stray upgrade packet: nothing to do.

    async def receive_binary(self, data: bytes) -> None:
        """One Engine.IO binary message: the next attachment of a binary packet."""
        if self.session.closed:
            return
        if self._skip:
            self._skip -= 1
            return
        packet = self._binary
        if packet is None:
            self._bad_frame("Binary message without a binary packet before it")
            return
        self._attachments.append(data)
        if len(self._attachments) < packet.attachments:
            return
        attachments, self._binary, self._attachments = self._attachments, None, []
        try:
            data_with_binary, paths = attach_binary(packet.data, attachments)
        except FrameError as exc:
            self._bad_frame(exc.message, packet.id)
            return
        await self._packet(dataclasses.replace(packet, data=data_with_binary), paths)

    def _abandon_binary(self) -> None:
        """A text packet came while attachments were awaited: that binary packet is incomplete
        (answered once); its attachments arriving later are skipped, not errors each."""
        packet = self._binary
        if packet is not None:
            self._skip = packet.attachments - len(self._attachments)
            self._binary, self._attachments = None, []
            self._bad_frame("Binary packet is missing attachments", packet.id)
        else:
            self._skip = 0

    # --- Socket.IO packets --------------------------------------------------------------------

    async def _message(self, payload: str) -> None:
        try:
            packet = decode_socketio(payload)
        except FrameError as exc:
            self._bad_frame(exc.message)
            return
        if packet.type in (BINARY_EVENT, BINARY_ACK):
            if not 1 <= packet.attachments <= MAX_ATTACHMENTS:
                self._skip = packet.attachments
                self._bad_frame(
                    f"A binary packet carries 1 to {MAX_ATTACHMENTS} attachments", packet.id
                )
                return
            self._binary = packet
            return
        await self._packet(packet, [])

    async def _packet(self, packet: SioPacket, binary: list[BinaryPath]) -> None:
        if packet.type == CONNECT:
            await self._connect(packet)
        elif packet.type == DISCONNECT:
            self._disconnect(packet)
        elif packet.type in (EVENT, BINARY_EVENT) and self.connected:
            if packet.namespace != DEFAULT_NAMESPACE:
                self._bad_frame(f"Unknown namespace '{packet.namespace[:50]}'", packet.id)
                return
            await self._event(packet, binary)
        # An ACK from the client answers nothing (the server asks for none); events before the
        # handshake are ignored, as Socket.IO servers do.

    async def _connect(self, packet: SioPacket) -> None:
        session = self.session
        if packet.namespace != DEFAULT_NAMESPACE:
            session.send_text(connect_error_packet("Invalid namespace", None, packet.namespace))
            return
        if self.connected:
            session.send_text(connect_packet(session.socket_id, pid=session.recovery_pid))
            return
        # The CONNECT payload: the client's `auth`, plus `pid` and `offset` when
        # socket.io-client asks to recover a connection (realtime.handlers.recovery).
        auth = packet.data if isinstance(packet.data, dict) else {}
        token = auth.get("token") if isinstance(auth.get("token"), str) else None
        try:
            gate = await session.check_connect()
            await session.admit(token or token_from_handshake(session.scope), gate)
        except AuthError as exc:
            self._refuse(exc.code)
            return
        except ServiceUnavailable:  # a dependency the handshake needs is down: 1013
            self._refuse(ErrorCode.SERVICE_UNAVAILABLE)
            return
        self.connected = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        try:
            await open_socketio(session, auth, self._answer)
        except ServiceUnavailable:
            session.close(CloseCode.TRY_AGAIN_LATER, CloseReason.SERVICE_UNAVAILABLE)

    def _answer(self, pid: str | None) -> None:
        """The CONNECT answer: the public socket id, and the recovery pid."""
        self.session.send_text(connect_packet(self.session.socket_id, pid=pid))

    def _refuse(self, code: ErrorCode) -> None:
        session = self.session
        message, close_code = session.refuse_frames(code)
        session.send_text(connect_error_packet(message, code.value))
        if code in FINAL_REFUSALS:
            session.close(close_code, code.value, farewell=False)
        else:
            self._arm_handshake_timer()

    def _disconnect(self, packet: SioPacket) -> None:
        """``41`` ends the Socket.IO session of ``/``; the Engine.IO connection closes when no
        namespace is left, and ``/`` is the only one served. ``41`` for a namespace that was
        never joined leaves everything as it is."""
        if packet.namespace != DEFAULT_NAMESPACE:
            return
        self.connected = False
        self.session.close(CloseCode.NORMAL, CloseReason.CLIENT_DISCONNECT, farewell=False)

    async def _event(self, packet: SioPacket, binary: list[BinaryPath]) -> None:
        session = self.session
        args = packet.data
        if len(args) > 2:
            self._bad_frame("Only one argument is supported per event", packet.id)
            return
        inbound = Inbound(
            event=str(args[0]),
            data=args[1] if len(args) == 2 else {},
            ack=packet.id,
            binary=tuple(field_name(path) for path in binary),
            received_at=self.received_at,
        )
        if inbound.event != "ping":
            await session.touch()
        await dispatch(session, inbound)

    def _bad_frame(self, message: str, ack: int | None = None) -> None:
        session = self.session
        if not self.connected or session.closed:
            return
        body = {"code": ErrorCode.BAD_FRAME, "message": message}
        metrics.count_error(ErrorCode.BAD_FRAME)
        if ack is not None:
            session.send_ack(ack, {"ok": False, "error": body})
        else:
            session.send_event("error", body)

    # --- timers -------------------------------------------------------------------------------

    def _arm_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self._handshake_timer = asyncio.get_running_loop().call_later(
            settings.AETURNIS_AUTH_FRAME_TIMEOUT_S, self._handshake_expired
        )

    def _handshake_expired(self) -> None:
        session = self.session
        if not self.connected and not session.closed:
            session.close(CloseCode.UNAUTHENTICATED, ErrorCode.AUTH_REQUIRED.value, farewell=False)

    async def _ping_loop(self) -> None:
        """As Engine.IO servers do: ping, wait up to pingTimeout for the pong, then wait
        pingInterval before the next ping. A missing pong ends the connection."""
        session = self.session
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
                session.close(CloseCode.NORMAL, CloseReason.PING_TIMEOUT, farewell=False)
                return
