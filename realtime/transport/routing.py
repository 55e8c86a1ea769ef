"""WebSocket routes."""

from __future__ import annotations

from django.urls import path

from realtime.transport.native import NativeConsumer
from realtime.transport.socketio import SocketIOConsumer

websocket_urlpatterns = [
    path("ws/game/", NativeConsumer.as_asgi()),
    path("socket.io/", SocketIOConsumer.as_asgi()),
]
