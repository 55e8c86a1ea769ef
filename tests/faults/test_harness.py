"""The fault harness itself: the proxy really cuts, stalls and restores; Redis really restarts.

Without these, a fault test that passes might only show that no fault was injected.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import redis

from tests.faults.conftest import requires_fault_env
from tests.faults.proxy import FaultProxy
from tests.faults.redis_server import RedisServer

pytestmark = [pytest.mark.faults, pytest.mark.e2e, requires_fault_env]

TIMEOUT_S = 3.0


@pytest.fixture
async def echo_proxy() -> AsyncIterator[tuple[FaultProxy, list[bytes]]]:
    """A proxy in front of an echo server that also records everything it received."""
    received: list[bytes] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                received.append(data)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = FaultProxy("echo", "127.0.0.1", port).start()
    try:
        yield proxy, received
    finally:
        proxy.close()
        server.close()


async def roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), TIMEOUT_S)


async def test_proxy_forwards_then_cut_resets_and_refuses_then_restore_serves_again(
    echo_proxy: tuple[FaultProxy, list[bytes]],
) -> None:
    proxy, _ = echo_proxy
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await roundtrip(reader, writer, b"hello") == b"hello"

    proxy.cut()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), TIMEOUT_S)
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", proxy.port)

    proxy.restore()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await roundtrip(reader, writer, b"again") == b"again"
    writer.close()
    assert proxy.stats.resets == 1


async def test_proxy_stall_holds_bytes_and_new_connections_until_restore(
    echo_proxy: tuple[FaultProxy, list[bytes]],
) -> None:
    proxy, received = echo_proxy
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await roundtrip(reader, writer, b"before") == b"before"

    proxy.stall()
    writer.write(b"held")
    await writer.drain()
    # A connection made during the stall is accepted (no refusal, no reset) but held.
    late_reader, late_writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", proxy.port), TIMEOUT_S
    )
    late_writer.write(b"late")
    await late_writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.5)
    assert b"held" not in b"".join(received) and b"late" not in b"".join(received)

    proxy.restore()
    assert await asyncio.wait_for(reader.readexactly(4), TIMEOUT_S) == b"held"
    assert await asyncio.wait_for(late_reader.readexactly(4), TIMEOUT_S) == b"late"
    writer.close()
    late_writer.close()


def test_private_redis_restarts_empty_on_the_same_port(redis_server: RedisServer) -> None:
    client = redis_server.client()
    try:
        client.set("k", "v")
        redis_server.kill()
        with pytest.raises(redis.exceptions.ConnectionError):
            client.get("k")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", redis_server.port), timeout=TIMEOUT_S)
        redis_server.start()
        assert client.get("k") is None  # no persistence: the data is gone
    finally:
        client.close()
