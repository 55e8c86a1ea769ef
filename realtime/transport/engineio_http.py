"""HTTP under ``/socket.io/``: Engine.IO v4 long-polling, a plain ASGI app (PROTOCOL.md §1.2).

``aeturnis/asgi.py`` sends every HTTP request whose path starts with ``/socket.io/`` here,
before Django: no Django view, middleware or CSRF check runs on this path. CSRF does not apply
because nothing here authenticates by cookie: the token comes in the Socket.IO CONNECT packet
(or a header or the query), and the secret sid authorises the requests of a session.

* ``GET ?EIO=4&transport=polling`` opens a session: the open packet alone, advertising the
  upgrade to WebSocket.
* ``GET …&sid=`` long-polls: answered as soon as packets wait (at most 16), else held until
  something is sent or the ping interval passed.
* ``POST …&sid=`` carries packets (``\\x1e``-separated, binary as ``b`` + base64), each handled
  in order before the answer ``ok``; the body is limited to ``maxPayload``.
* Every refusal is Engine.IO's: HTTP 400 with ``{"code", "message"}`` (a second concurrent
  GET or POST, a bad or oversized body end the session too).
* CORS as ``AETURNIS_ALLOWED_ORIGINS`` says: allowed origins get their origin and credentials
  back (preflights are answered 204); other browser origins are refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from django.conf import settings

from realtime.auth.sources import header, origin_allowed
from realtime.connection.session import Session
from realtime.protocol import engineio
from realtime.protocol.base import FrameError
from realtime.protocol.socketio import SOCKETIO
from realtime.runtime.runtime import Runtime
from realtime.transport.app import app_runtime
from realtime.transport.polling import PollingSession, PollingSessions, new_sid
from realtime.transport.sio_connection import SioConnection

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# A POST body must arrive within this time (a client that trickles it holds the session's one
# POST slot meanwhile).
BODY_TIMEOUT_S = 30.0
PAYLOAD_TOO_LARGE = (3, "Payload too large")
SHUTTING_DOWN = (3, "Server shutting down")

_TEXT = b"text/plain; charset=UTF-8"
_JSON = b"application/json"
# Engine.IO answers a POST "ok" as text/html (clients only look at the status).
_HTML = b"text/html"


class _TooLarge(Exception):
    pass


class _Gone(Exception):
    pass


async def _no_socket(message: Message) -> None:
    """The ASGI send of a session that has no socket (yet): long-polling writes nothing."""
    raise RuntimeError("a polling session has no socket to send to")


def _cors_headers(scope: Scope) -> Headers:
    """CORS headers for a browser origin that ``AETURNIS_ALLOWED_ORIGINS`` allows (none for
    requests without ``Origin``). Listed origins, and the server's own, may send credentials;
    any origin (``*``, or DEBUG without a list) gets ``*`` and no credentials."""
    origin = header(scope, b"origin")
    if origin is None or not origin_allowed(scope):
        return []
    origins = settings.AETURNIS_ALLOWED_ORIGINS
    if "*" in origins or (settings.DEBUG and not origins):
        return [(b"access-control-allow-origin", b"*")]
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
        (b"vary", b"Origin"),
    ]


class _Request:
    """One HTTP request under ``/socket.io/`` and its answer."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self._send = send
        self.method = str(scope.get("method", "GET")).upper()
        raw = bytes(scope.get("query_string") or b"").decode("latin-1")
        self.query = {key: values[0] for key, values in parse_qs(raw).items()}
        self.cors = _cors_headers(scope)

    async def answer(self, status: int, body: bytes, content_type: bytes) -> None:
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            *self.cors,
        ]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def error(self, error: tuple[int, str]) -> None:
        code, message = error
        await self.answer(400, orjson.dumps({"code": code, "message": message}), _JSON)

    async def preflight(self) -> None:
        requested = header(self.scope, b"access-control-request-headers")
        headers = [
            *self.cors,
            (b"access-control-allow-methods", b"GET, POST"),
            (b"access-control-max-age", b"600"),
            (b"content-length", b"0"),
        ]
        if requested:
            headers.append((b"access-control-allow-headers", requested.encode("latin-1")))
        await self._send({"type": "http.response.start", "status": 204, "headers": headers})
        await self._send({"type": "http.response.body", "body": b""})

    async def body(self, limit: int) -> bytes:
        """The request body; ``_TooLarge`` past ``limit`` bytes, ``_Gone`` if the client left."""
        declared = header(self.scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(BODY_TIMEOUT_S):
            while True:
                message = await self.receive()
                if message.get("type") == "http.disconnect":
                    raise _Gone
                chunk = bytes(message.get("body") or b"")
                size += len(chunk)
                if size > limit:
                    raise _TooLarge
                chunks.append(chunk)
                if not message.get("more_body"):
                    return b"".join(chunks)


class EngineIOHttp:
    """The ASGI app for HTTP requests under ``/socket.io/``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = _Request(scope, receive, send)
        if request.method == "OPTIONS" and header(scope, b"access-control-request-method"):
            if request.cors:
                await request.preflight()
            else:
                await request.error(engineio.FORBIDDEN)
            return
        if not origin_allowed(scope):
            await request.error(engineio.FORBIDDEN)
            return
        query = request.query
        if query.get("EIO") != "4":
            await request.error(engineio.UNSUPPORTED_PROTOCOL_VERSION)
            return
        if query.get("transport") not in engineio.TRANSPORTS:
            await request.error(engineio.TRANSPORT_UNKNOWN)
            return
        # A WebSocket transport asked for over plain HTTP, or JSONP (gone from v4 clients).
        if query.get("transport") != engineio.POLLING or "j" in query:
            await request.error(engineio.BAD_REQUEST)
            return
        runtime = await app_runtime()
        sessions = runtime.get(PollingSessions)
        sid = query.get("sid")
        if sid is None:
            await self._handshake(request, runtime, sessions)
            return
        polling = sessions.find(sid)
        if polling is None:
            # Never issued, ended, or issued by another process (a balancer that is not
            # sticky): the client reconnects with a new handshake.
            await request.error(engineio.SESSION_ID_UNKNOWN)
        elif polling.upgraded:
            await request.error(engineio.BAD_REQUEST)
        elif request.method == "GET":
            await self._get(request, polling)
        elif request.method == "POST":
            await self._post(request, polling)
        else:
            await request.error(engineio.BAD_REQUEST)

    async def _handshake(
        self, request: _Request, runtime: Runtime, sessions: PollingSessions
    ) -> None:
        if request.method != "GET":
            await request.error(engineio.BAD_HANDSHAKE_METHOD)
            return
        if runtime.shutting_down:
            # A transport error to the client, which goes on reconnecting until a live
            # process answers.
            await request.error(SHUTTING_DOWN)
            return
        session = Session(scope=request.scope, codec=SOCKETIO, send=_no_socket, runtime=runtime)
        outbound = session.use_polling()
        connection = SioConnection(session, new_sid())
        polling = PollingSession(connection, outbound, sessions)
        polling.bind_logs()
        opened = engineio.open_packet(
            connection.sid,
            ping_interval_ms=settings.AETURNIS_SIO_PING_INTERVAL_MS,
            ping_timeout_ms=settings.AETURNIS_SIO_PING_TIMEOUT_MS,
            max_payload=settings.AETURNIS_SIO_MAX_PAYLOAD_BYTES,
            upgrades=[engineio.WEBSOCKET],
        )
        connection.start()
        await request.answer(200, opened.encode(), _TEXT)

    async def _get(self, request: _Request, polling: PollingSession) -> None:
        polling.bind_logs()
        if polling.getting:
            # Two GETs at once: the client is broken or the sid leaked. The session ends; the
            # held GET answers the close.
            await request.error(engineio.BAD_REQUEST)
            await polling.end()
            return
        polling.getting = True
        try:
            packets = await polling.poll(request.receive)
        finally:
            polling.getting = False
        if packets is None:
            return  # the client went away; nothing was taken
        await request.answer(200, engineio.encode_payload(packets), _TEXT)
        if polling.took(packets):
            await polling.end()

    async def _post(self, request: _Request, polling: PollingSession) -> None:
        polling.bind_logs()
        if polling.posting:
            await request.error(engineio.BAD_REQUEST)
            await polling.end()
            return
        polling.posting = True
        try:
            error = await self._handle_body(request, polling)
        finally:
            polling.posting = False
        if error is None:
            await request.answer(200, b"ok", _HTML)
            return
        await request.error(error)
        await polling.end()

    async def _handle_body(
        self, request: _Request, polling: PollingSession
    ) -> tuple[int, str] | None:
        """Read the body and hand its packets over in order; the error that ends the session
        when the body is refused."""
        received_at = time.time()  # the request reached the process: its moves arrived now
        try:
            packets = engineio.decode_payload(
                await request.body(settings.AETURNIS_SIO_MAX_PAYLOAD_BYTES)
            )
        except _TooLarge:
            return PAYLOAD_TOO_LARGE
        except (_Gone, TimeoutError):
            return engineio.BAD_REQUEST
        except FrameError as exc:
            logger.info("refused polling payload: %s", exc.message)
            return engineio.BAD_REQUEST
        connection = polling.connection
        connection.received_at = received_at
        for packet in packets:
            if polling.ended or connection.session.closed:
                break
            if isinstance(packet, bytes):
                await connection.receive_binary(packet)
            else:
                await connection.receive_text(packet)
        return None
