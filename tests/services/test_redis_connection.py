"""A Redis connection whose transport was closed under it fails as a connection, on uvloop too.

uvicorn runs on uvloop, whose transports raise ``RuntimeError`` for a write after they were
closed (Redis went away between a pooled connection's health check and the write); redis-py
let that through, so a Redis restart showed up as a traceback instead of an outage.
"""

from __future__ import annotations

import asyncio

import pytest
import redis
import uvloop
from django.conf import settings

from realtime.core.redis_client import REDIS_ERRORS, async_options

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL.startswith("redis://"), reason="needs REDIS_URL (redis://)"
)


def test_a_write_on_a_closed_transport_is_a_connection_error() -> None:
    async def scenario() -> BaseException | None:
        pool = redis.asyncio.ConnectionPool.from_url(settings.REDIS_URL, **async_options())
        connection = pool.make_connection()
        try:
            await connection.connect()
            writer = connection._writer
            assert writer is not None
            writer.transport.abort()  # gone under the connection, as in a Redis restart
            await asyncio.sleep(0)
            try:
                await connection.send_command("PING", check_health=False)
            except BaseException as exc:
                return exc
            return None
        finally:
            await connection.disconnect()
            await pool.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        raised = runner.run(scenario())
    assert raised is not None, "the write on a closed transport did not fail"
    assert isinstance(raised, REDIS_ERRORS), repr(raised)
