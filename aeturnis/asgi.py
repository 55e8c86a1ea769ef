"""ASGI entry point: HTTP (Django) and the WebSocket transports."""

from __future__ import annotations

import os
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aeturnis.settings")

from django.core.asgi import get_asgi_application

# Must run before anything that imports models (simplejwt's token module does).
django_asgi_app = get_asgi_application()

from aeturnis import collector  # noqa: E402
from aeturnis.proxy import forwarded_scope  # noqa: E402
from realtime.transport.daphne import patch_daphne  # noqa: E402
from realtime.transport.engineio_http import EngineIOHttp  # noqa: E402
from realtime.transport.http_limits import RequestBodyLimit  # noqa: E402
from realtime.transport.routing import websocket_consumer  # noqa: E402

patch_daphne()

# WhiteNoise's file responses are synchronous iterators: Django's ASGI handler reads each one
# into memory in a thread (as Django's own static handler does) and warns once per process.
# For these files (the admin's, Swagger UI's: 1.6 MB at most) that is the right trade.
warnings.filterwarnings(
    "ignore",
    message="StreamingHttpResponse must consume synchronous iterators",
    module=r"django\.core\.handlers\.asgi",
)

SOCKETIO_PATH = "/socket.io/"
engineio_http = EngineIOHttp()
django_http = RequestBodyLimit(django_asgi_app)


async def http_application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Engine.IO long-polling under /socket.io/, everything else Django.

    /socket.io/ never reaches Django: no view, no middleware, no CSRF check. CSRF does not apply
    there: nothing on that path authenticates by cookie (the token travels in the Socket.IO
    CONNECT packet, a header or the query, and the secret sid authorises each request).
    """
    if str(scope.get("path", "")).startswith(SOCKETIO_PATH):
        await engineio_http(scope, receive, send)
    else:
        await django_http(scope, receive, send)


# Static files are served by WhiteNoise (a Django middleware) in every mode. The scheme a
# TLS-terminating proxy reports is believed only from TRUSTED_PROXIES (aeturnis/proxy.py).
class Application:
    """The ASGI application: every HTTP and WebSocket scope gets the proxy's scheme
    (``aeturnis.proxy``), HTTP goes to ``http``, a WebSocket to a new instance of its path's
    consumer (``websocket``); a path with none is refused (403) before the handshake.

    Routing here, in one coroutine, rather than Channels' ``ProtocolTypeRouter`` and
    ``URLRouter`` under a middleware: a socket lives for hours, and for all that time each
    of those held a suspended coroutine above the consumer, with the router's copy of the
    scope (~1.3 KB per connection, bench/README.md, ``memory.py``).
    """

    def __init__(
        self,
        http: Callable[..., Awaitable[None]],
        websocket: Callable[[dict[str, Any]], Callable[[], Any] | None],
    ) -> None:
        self.http = http
        self.websocket = websocket

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "websocket":
            scope = forwarded_scope(scope)
            consumer = self.websocket(scope)
            if consumer is None:
                await send({"type": "websocket.close"})
                return
            await consumer()(scope, receive, send)
        elif kind == "http":
            await self.http(forwarded_scope(scope), receive, send)
        else:
            raise ValueError(f"No application configured for scope type {kind!r}")


application = Application(http_application, websocket_consumer)

# Everything the process needs is loaded now: freeze it out of the collector's passes.
collector.tune()
