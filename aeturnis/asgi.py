"""ASGI entry point: HTTP (Django) and the WebSocket transports."""

from __future__ import annotations

import os
import warnings
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aeturnis.settings")

from django.core.asgi import get_asgi_application

# Must run before anything that imports models (simplejwt's token module does).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from aeturnis import collector  # noqa: E402
from aeturnis.proxy import ForwardedProto  # noqa: E402
from realtime.transport.daphne import patch_daphne  # noqa: E402
from realtime.transport.engineio_http import EngineIOHttp  # noqa: E402
from realtime.transport.http_limits import RequestBodyLimit  # noqa: E402
from realtime.transport.routing import websocket_urlpatterns  # noqa: E402

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
application = ForwardedProto(
    ProtocolTypeRouter(
        {
            "http": http_application,
            "websocket": URLRouter(websocket_urlpatterns),
        }
    )
)

# Everything the process needs is loaded now: freeze it out of the collector's passes.
collector.tune()
