"""The application's own routing (aeturnis/asgi.py, realtime/transport/routing.py): each
WebSocket path reaches its consumer with nothing suspended in between, and any other path is
refused before the handshake."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aeturnis.asgi import Application, application
from realtime.transport.native import NativeConsumer
from realtime.transport.routing import websocket_consumer
from realtime.transport.socketio import SocketIOConsumer

WS_TIMEOUT = 5


@pytest.mark.parametrize(
    ("path", "root_path", "expected"),
    [
        ("/ws/game/", "", NativeConsumer),
        ("/socket.io/", "", SocketIOConsumer),
        ("/game/ws/game/", "/game", NativeConsumer),
        ("/ws/game/", "/game", None),  # outside the root path
        ("/ws/game", "", None),  # matched exactly, as Django's path() did
        ("/ws/game/x", "", None),
        ("/api/", "", None),
    ],
)
def test_each_path_has_its_consumer(path: str, root_path: str, expected: type | None) -> None:
    assert websocket_consumer({"type": "websocket", "path": path, "root_path": root_path}) is (
        expected
    )


async def test_the_consumer_is_awaited_with_nothing_suspended_in_between() -> None:
    """Above a live socket's consumer there is only the application's own coroutine: no
    router or middleware frame is kept for the socket's lifetime."""
    entered = asyncio.Event()

    class Consumer:
        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            entered.set()
            await asyncio.Event().wait()

    async def http(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise AssertionError("not HTTP")

    routed = Application(http, lambda scope: Consumer)({"type": "websocket", "path": "/"}, 0, 0)
    task = asyncio.ensure_future(routed)
    await entered.wait()
    awaited = routed.cr_await
    assert awaited is not None and awaited.cr_code is Consumer.__call__.__code__
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_path_without_a_consumer_is_refused_before_the_handshake() -> None:
    from channels.testing import WebsocketCommunicator

    comm = WebsocketCommunicator(application, "/ws/nothing-here/")
    comm.scope["client"] = ["127.0.0.1", 40000]
    connected, code = await comm.connect(timeout=WS_TIMEOUT)
    assert not connected
    assert code == 1000  # channels' communicator: a close before accept, the server's 403
