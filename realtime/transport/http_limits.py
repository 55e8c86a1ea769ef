"""HTTP request bodies over ``AETURNIS_MAX_REQUEST_BYTES`` are refused before they are read.

Django reads a whole body before any middleware runs, so the check wraps the Django ASGI
application: a ``Content-Length`` over the limit is answered 413 at once (``Connection: close``,
without reading, so no ``100 Continue`` is sent); a chunked body is counted as it arrives and
refused the moment it passes the limit. (Under daphne, which reads a body completely before the
application sees it, ``realtime.transport.daphne`` refuses it even earlier.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

BODY = (
    b'{"success": false, "error": {"code": "PAYLOAD_TOO_LARGE", '
    b'"message": "Request body too large"}}'
)


class _TooLarge(Exception):
    pass


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if bytes(name).lower() == b"content-length":
            try:
                return int(bytes(value))
            except ValueError:
                return None
    return None


async def refuse(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BODY)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


class RequestBodyLimit:
    """ASGI middleware: 413 for HTTP bodies over the limit, everything else passed through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        limit = int(settings.AETURNIS_MAX_REQUEST_BYTES)
        length = declared_length(scope)
        if length is not None and length > limit:
            await refuse(send)
            return
        started = False
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body") or b"")
                if received > limit:
                    raise _TooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await refuse(send)
