"""ASGI entry point: HTTP (Django) and the WebSocket transports."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aeturnis.settings")

from django.core.asgi import get_asgi_application

# Must run before anything that imports models (simplejwt's token module does).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from realtime.transport.daphne import patch_daphne  # noqa: E402
from realtime.transport.http_limits import RequestBodyLimit  # noqa: E402
from realtime.transport.routing import websocket_urlpatterns  # noqa: E402

patch_daphne()

application = ProtocolTypeRouter(
    {
        # In DEBUG (the embedded default) serve the admin's static files too.
        "http": RequestBodyLimit(
            ASGIStaticFilesHandler(django_asgi_app) if settings.DEBUG else django_asgi_app
        ),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
