"""The native JSON transport at ``/ws/game/`` (PROTOCOL.md §1.1): a thin consumer.

It accepts, finds the token, and turns frames into requests for the shared session and
dispatch code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.exceptions import StopConsumer
from django.conf import settings

from realtime.auth.sources import origin_allowed, selected_subprotocol, token_from_handshake
from realtime.auth.tokens import AuthError
from realtime.connection.session import Session
from realtime.core import logs, metrics
from realtime.core.constants import RX_KEY, CloseCode, CloseReason
from realtime.core.errors import ErrorCode, ServiceUnavailable
from realtime.handlers.dispatch import dispatch
from realtime.handlers.lifecycle import close_session, open_session
from realtime.protocol.base import FrameError, Inbound
from realtime.protocol.native import NATIVE
from realtime.protocol.payloads import AUTH
from realtime.transport.app import app_runtime
from realtime.transport.consumer import DirectConsumer

logger = logging.getLogger(__name__)


def frame_size(message: dict[str, Any]) -> int:
    text = message.get("text")
    if text is not None:
        return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    data = message.get("bytes")
    return len(data) if data is not None else 0


class NativeConsumer(DirectConsumer):
    session: Session | None = None
    _auth_timer: asyncio.TimerHandle | None = None
    _awaiting_auth_frame = False

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        if not origin_allowed(self.scope):
            # Refusing before accept is an HTTP 403, which is what a browser should see here.
            await self.send({"type": "websocket.close"})
            return
        runtime = await app_runtime()
        session = self.session = Session(
            scope=self.scope, codec=NATIVE, send=self.send, runtime=runtime
        )
        logs.bind(socket_id=session.socket_id)
        await self.send(
            {"type": "websocket.accept", "subprotocol": selected_subprotocol(self.scope)}
        )
        if runtime.shutting_down:  # arrived after SIGTERM: try another process
            session.server_shutdown(settings.AETURNIS_SHUTDOWN_RECONNECT_AFTER_MS)
            return
        try:
            gate = await session.check_connect()
            token = token_from_handshake(self.scope)
            if token is None:
                self._await_auth_frame()
                return
            await session.admit(token, gate)
            await open_session(session)
        except AuthError as exc:
            self.refuse(exc.code)
        except ServiceUnavailable:  # a dependency the handshake needs is down: 1013
            self.refuse(ErrorCode.SERVICE_UNAVAILABLE)

    def _await_auth_frame(self) -> None:
        self._awaiting_auth_frame = True
        self._auth_timer = asyncio.get_running_loop().call_later(
            settings.AETURNIS_AUTH_FRAME_TIMEOUT_S, self.refuse, ErrorCode.AUTH_REQUIRED
        )

    def refuse(self, code: ErrorCode) -> None:
        """Answer a failed handshake: ``connect_error`` then close with the contract's code."""
        session = self.session
        if session is None or session.closed:
            return
        self._awaiting_auth_frame = False
        message, close_code = session.refuse_frames(code)
        session.send_event("connect_error", {"code": code.value, "message": message})
        session.close(close_code, code.value)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        session = self.session
        if session is None or session.closed:
            return
        if frame_size(message) > settings.AETURNIS_MAX_FRAME_BYTES:
            session.close(CloseCode.MESSAGE_TOO_BIG, CloseReason.MESSAGE_TOO_BIG)
            return
        try:
            received_at = message.get(RX_KEY) or time.time()
            inbound = NATIVE.decode(message.get("text"), message.get("bytes"), received_at)
        except FrameError as exc:
            if self._awaiting_auth_frame:
                self.refuse(ErrorCode.AUTH_REQUIRED)
                return
            body = {"code": ErrorCode.BAD_FRAME, "message": exc.message}
            metrics.count_error(ErrorCode.BAD_FRAME)
            if exc.ack is not None:
                session.send_ack(exc.ack, {"ok": False, "error": body})
            else:
                session.send_event("error", body)
            return
        if self._awaiting_auth_frame:
            await self._auth_frame(session, inbound)
            return
        if inbound.event != "ping":
            await session.touch()
        await dispatch(session, inbound)

    async def _auth_frame(self, session: Session, inbound: Inbound) -> None:
        """The first frame must be ``auth`` with a token (token source 5 of PROTOCOL.md §2)."""
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        self._awaiting_auth_frame = False
        token: str | None = None
        if inbound.event == "auth":
            try:
                token = AUTH.validate_python(inbound.data).token
            except ValueError:
                token = None
        try:
            await session.admit(token)
            await open_session(session)
        except AuthError as exc:
            self.refuse(exc.code)
        except ServiceUnavailable:  # a dependency the handshake needs is down: 1013
            self.refuse(ErrorCode.SERVICE_UNAVAILABLE)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        if self.session is not None:
            await close_session(self.session)
        raise StopConsumer()
