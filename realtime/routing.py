"""WebSocket routes."""

from __future__ import annotations

from django.urls import path

from realtime.consumers import NativeConsumer

websocket_urlpatterns = [
    path("ws/game/", NativeConsumer.as_asgi()),
]
