"""WebSocket routes."""

from __future__ import annotations

from django.urls import path

from realtime.consumers import NativeConsumer
from realtime.socketio_consumer import SocketIOConsumer

websocket_urlpatterns = [
    path("ws/game/", NativeConsumer.as_asgi()),
    path("socket.io/", SocketIOConsumer.as_asgi()),
]
