"""A closed connection is freed when its last reference goes, not left to the cyclic collector.

Every object of a connection that sits in a reference cycle waits for a collector pass, and the
collector's full passes walk every connection still open: in connect storms it took ~8 % of the
server's CPU (bench/README.md, "The garbage collector"). These tests close a connection, then
run the collector with ``DEBUG_SAVEALL`` (what it frees is kept in ``gc.garbage``): none of the
connection's objects may be there, and none may still be alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from realtime.connection.session import Session
from realtime.transport.uvicorn import WebSocketProtocol
from tests.conftest import WS_TIMEOUT, access_for, connect_as
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def made(monkeypatch: pytest.MonkeyPatch, *classes: type) -> Iterator[list[tuple[type, int]]]:
    """The ids of the instances of ``classes`` made meanwhile (ids: a reference would keep
    them alive)."""
    made: list[tuple[type, int]] = []
    for cls in classes:
        original = cls.__init__

        def recording(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
            made.append((type(self), id(self)))
            __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", recording)
    yield made


def assert_freed_without_the_collector(made: list[tuple[type, int]]) -> None:
    assert made, "nothing was made: the test did not exercise a connection"
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        collected = [(type(o), id(o)) for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    ids = set(made)
    assert not [kind for kind, ident in collected if (kind, ident) in ids], "left in cycles"
    alive = {(type(o), id(o)) for o in gc.get_objects() if (type(o), id(o)) in ids}
    assert not alive, f"still referenced: {alive}"


async def _settled() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_a_closed_connection_leaves_nothing_for_the_collector(
    make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await database_sync_to_async(make_user)()
    # Collect what earlier tests left before counting, with the collector off meanwhile.
    gc.collect()
    gc.disable()
    try:
        with made(monkeypatch, Session) as sessions:
            comm, _initial = await connect_as(user)
            await comm.disconnect(timeout=WS_TIMEOUT)
            del comm
            await _settled()
        assert_freed_without_the_collector(sessions)
    finally:
        gc.enable()


@pytest.mark.parametrize("closer", ["client", "server"])
async def test_on_uvicorn_a_closed_websocket_leaves_nothing_for_the_collector(
    closer: str, make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn in this process, with our protocol, and a real client: the HTTP protocol left
    behind at the upgrade, the WebSocket protocol, its raw socket and websockets' parser.
    The client closes (the socket is lost before the application ends), or the server does
    (a refused token: the application ends first)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from websockets.server import ServerProtocol

    from aeturnis.asgi import application

    user = await database_sync_to_async(make_user)()
    port = free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        ws=WebSocketProtocol,
        ws_per_message_deflate=False,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started

        async def one_connection() -> None:
            token = access_for(user) if closer == "client" else "not-a-token"
            url = f"ws://127.0.0.1:{port}/ws/game/?token={token}"
            async with ws_connect(url) as client:
                first = json.loads(await asyncio.wait_for(client.recv(), WS_TIMEOUT))
                if closer == "client":
                    assert first["event"] == "sync:initial"
                else:
                    assert first["event"] == "connect_error"
                    with pytest.raises(ConnectionClosed):
                        await asyncio.wait_for(client.recv(), WS_TIMEOUT)
                    assert client.close_code is not None and client.close_code >= 4000
            for _ in range(500):
                if not server.server_state.connections and not server.server_state.tasks:
                    break
                await asyncio.sleep(0.01)
            await _settled()

        # A process's first connection of a kind is not the steady state. With Redis, the
        # first refused token is recorded on a new redis-py connection, whose handshake meets
        # an error redis-py ignores (CLIENT SETINFO, before Redis 7.2); that exception, with
        # the refusal being handled as its context, is in a cycle with its traceback's frames,
        # which hold the session. It happens once per pooled connection, not per connect.
        await one_connection()
        gc.collect()
        gc.disable()
        with made(
            monkeypatch, WebSocketProtocol, HttpToolsProtocol, ServerProtocol, Session
        ) as objs:
            await one_connection()
        kinds = {kind for kind, _ in objs}
        assert {WebSocketProtocol, HttpToolsProtocol, ServerProtocol, Session} <= kinds
        assert_freed_without_the_collector(objs)
    finally:
        gc.enable()
        server.should_exit = True
        await asyncio.wait_for(serving, 15)
