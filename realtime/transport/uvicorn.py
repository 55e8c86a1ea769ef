"""uvicorn's sans-I/O WebSocket protocol, with a way to write frames straight to the socket.

Run uvicorn with ``--ws realtime.transport.uvicorn:WebSocketProtocol`` (``./dev serve --server
uvicorn`` does). Everything is uvicorn's own ``websockets-sansio`` implementation except:

* the scope carries a ``RawSocket`` (``scope["extensions"]["aeturnis.socket"]``): the session
  writes pre-built frames to the transport directly — the same bytes to every recipient of a
  room event, no ASGI message, no coroutine, no re-framing per recipient;
* congestion is visible (``writable``/``buffered``) and a drained buffer is reported, so the
  session can bound what a slow client costs and close it 4008 (``SocketOutbound``);
* a close frame is written at once, even behind a congested buffer, and a peer that never
  answers it is aborted after ``AETURNIS_CLOSE_GRACE_S`` (uvicorn's own close waits for a
  buffer that a client that stopped reading never drains);
* every received message carries the time its bytes reached the process
  (``"aeturnis.rx"``, epoch seconds), so movement is judged on arrival (PROTOCOL.md §5.2);
* an idle connection holds less: a lean inbox and writable flag instead of an asyncio queue and
  event, and no handshake request once the accept is sent;
* websockets logs to ``uvicorn.error.websockets`` rather than ``uvicorn.error``, so that its
  per-connection INFO lines, which repeat uvicorn's, can be left out (the settings' LOGGING
  does).

This module is imported by uvicorn before Django is set up (``Config.load``): it uses only
uvicorn, the standard library and the pure frame helpers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from realtime.core.constants import RAW_SOCKET
from realtime.transport.inbox import Flag, Inbox


def _close_grace_s() -> float:
    # Read from the environment, not Django settings: this module loads before Django.
    try:
        return float(os.environ.get("AETURNIS_CLOSE_GRACE_S") or 10)
    except ValueError:
        return 10.0


_BETWEEN_FRAMES = StreamReader.at_eof.__code__

# websockets' logger (uvicorn hands it "uvicorn.error"): a child of it, so that its lines go
# where uvicorn's go unless the configuration says otherwise for this one.
_WEBSOCKETS_LOG = logging.getLogger("uvicorn.error.websockets")


def _forget_request(conn: ServerProtocol) -> None:
    """Restart ``conn``'s frame parser without the handshake's request.

    websockets parses the handshake and then every frame in one generator, whose frame keeps
    the request (with its headers) for the life of the connection: ~2 KB per connection. Once
    the handshake is done, and while that generator waits between two frames (nothing of a
    frame consumed), a fresh frame parser is the same state without the request. In any other
    state, or if websockets changes its parser, nothing is touched.
    """
    outer = conn.parser
    inner = getattr(outer, "gi_yieldfrom", None)
    waiting = getattr(inner, "gi_yieldfrom", None)
    if getattr(waiting, "gi_code", None) is not _BETWEEN_FRAMES:
        return
    parser = Protocol.parse(conn)
    next(parser)
    conn.parser = parser
    outer.close()


class _UvicornSocket:
    """The ``RawSocket`` of one uvicorn WebSocket (see ``realtime.connection.outbound``)."""

    __slots__ = ("_drain", "_protocol")

    def __init__(self, protocol: WebSocketProtocol) -> None:
        self._protocol: WebSocketProtocol | None = protocol
        self._drain: Callable[[], None] | None = None

    def detach(self) -> None:
        """The connection is over: let go of the protocol (which holds this socket, as does
        its scope: a cycle), so that both are freed without the cyclic collector."""
        self._protocol = None
        self._drain = None

    def writable(self) -> bool:
        p = self._protocol
        return p is not None and p.writable.is_set()

    def buffered(self) -> int:
        p = self._protocol
        return 0 if p is None else int(p.transport.get_write_buffer_size())

    def write(self, data: bytes) -> None:
        p = self._protocol
        if (
            p is not None
            and p.handshake_complete
            and not p.close_sent
            and not p.disconnected
            and p.conn.state is State.OPEN
            and not p.transport.is_closing()
        ):
            p.transport.write(data)

    def close(self, code: int, reason: str) -> None:
        p = self._protocol
        if p is not None:
            p.close_now(code, reason)

    def on_drain(self, callback: Callable[[], None] | None) -> None:
        self._drain = callback

    def drained(self) -> None:
        callback = self._drain
        if callback is not None:
            callback()


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol plus direct frame writes (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Lean replacements for uvicorn's asyncio.Queue and asyncio.Event (inbox.py).
        self.inbox = self.queue = Inbox()  # type: ignore[assignment]
        self.conn.logger = _WEBSOCKETS_LOG
        self.conn.debug = _WEBSOCKETS_LOG.isEnabledFor(logging.DEBUG)
        self.writable = Flag()  # type: ignore[assignment]
        self.raw_socket = _UvicornSocket(self)
        self.app_done = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        # uvicorn's HTTP protocol hands the connection over here, from inside its own
        # data_received, and is not called again. Its parser holds its callbacks (bound
        # methods of it): uvicorn breaks that cycle when an HTTP connection is lost, never
        # after an upgrade, which leaves ~20 objects per WebSocket for the cyclic collector.
        upgraded = transport.get_protocol()
        if upgraded is not self and getattr(upgraded, "parser", None) is not None:
            upgraded.parser = None

    def data_received(self, data: bytes) -> None:
        self.inbox.arrived = time.time()
        super().data_received(data)

    async def run_asgi(self) -> None:
        extensions = cast(dict[str, Any], self.scope["extensions"])
        extensions[RAW_SOCKET] = self.raw_socket
        try:
            await super().run_asgi()
        finally:
            self.app_done = True
            if self.disconnected:
                self._release()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.app_done:
            self._release()

    def _release(self) -> None:
        """The application is done and the socket is gone: break the cycles that would keep
        this connection for the cyclic collector. The raw socket (in the scope) points back
        here, and websockets' parser generator holds the ServerProtocol that holds it (this
        runs after the last byte was read). A closed connection is then freed at once, and the
        collector, whose full passes grow with the number of connections, has less to do."""
        self.raw_socket.detach()
        self.conn.parser = None  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The handshake's request and response (with their header objects) are only read
            # until the accept is sent; the scope keeps the headers the application uses.
            # Dropped, they are ~1.7 KB less per connection.
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
            _forget_request(self.conn)

    def resume_writing(self) -> None:
        super().resume_writing()
        self.raw_socket.drained()

    def close_now(self, code: int, reason: str) -> None:
        """Send a close frame now (after what is buffered), tell the application the socket is
        closing, and abort it if the peer has not closed within the grace period."""
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:  # read the peer's close reply
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(_close_grace_s(), self._give_up)

    def _give_up(self) -> None:
        """The peer did not complete the close in time: drop the socket and its buffer."""
        self.close_timer = None
        if not self.disconnected:
            self.transport.abort()
