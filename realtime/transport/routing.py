"""WebSocket routes: each path's consumer, looked up by ``aeturnis.asgi.Application``."""

from __future__ import annotations

from typing import Any

from realtime.transport.native import NativeConsumer
from realtime.transport.socketio import SocketIOConsumer

# Paths without their leading "/", matched exactly (as Django's ``path()`` matched them).
WEBSOCKET_ROUTES: dict[str, type[Any]] = {
    "ws/game/": NativeConsumer,
    "socket.io/": SocketIOConsumer,
}


def websocket_consumer(scope: dict[str, Any]) -> type[Any] | None:
    """The consumer class of a WebSocket scope's path (below its ``root_path``), or None."""
    path = str(scope.get("path", ""))
    root_path = str(scope.get("root_path", ""))
    if root_path:
        if not path.startswith(root_path):
            return None
        path = path[len(root_path) :]
    return WEBSOCKET_ROUTES.get(path.lstrip("/"))
