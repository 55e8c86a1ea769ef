"""The process's Redis connection pool (``realtime.core.redis_client._Pool``): bounded, callers
wait for a free connection instead of failing, a wait has a limit, and a pooled connection
that Redis closed is replaced before a command is sent on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis
from django.conf import settings

from realtime.core.redis_client import _Pool, async_options

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


@pytest.fixture
async def small_pool() -> AsyncIterator[aioredis.Redis]:
    pool = _Pool.from_url(settings.REDIS_URL, max_connections=2, timeout=5, **async_options())
    client = aioredis.Redis.from_pool(pool)
    yield client
    await client.aclose()


async def test_callers_beyond_the_bound_wait_for_a_connection_and_all_complete(
    small_pool: aioredis.Redis,
) -> None:
    # Ten blocking commands over two connections: they run two at a time, none fails.
    results = await asyncio.gather(
        *(small_pool.blpop(["aeturnis:test:none"], 0.1) for _ in range(10))
    )
    assert results == [None] * 10
    pool = small_pool.connection_pool
    assert len(pool._available_connections) + len(pool._in_use_connections) == 2


async def test_a_wait_for_a_connection_has_a_limit() -> None:
    pool = _Pool.from_url(settings.REDIS_URL, max_connections=1, timeout=0.2, **async_options())
    client = aioredis.Redis.from_pool(pool)
    try:
        slow = asyncio.ensure_future(client.blpop(["aeturnis:test:none"], 0.5))
        await asyncio.sleep(0.05)
        with pytest.raises(redis.exceptions.ConnectionError, match="No connection available"):
            await client.ping()
        assert await slow is None
        assert await client.ping()  # the connection came back: the pool still works
    finally:
        await client.aclose()


async def test_a_connection_redis_closed_is_replaced_before_the_next_command(
    small_pool: aioredis.Redis,
) -> None:
    assert await small_pool.client_setname("aeturnis-pool-test")
    killer = redis.Redis.from_url(settings.REDIS_URL)
    try:
        killed = 0
        ids = [c["id"] for c in killer.client_list() if c.get("name") == "aeturnis-pool-test"]
        assert ids
        for client_id in ids:
            killed = killer.client_kill_filter(_id=client_id)
        assert killed
    finally:
        killer.close()
    await asyncio.sleep(0.1)  # the pooled connection's transport sees the end of stream
    assert await small_pool.ping()  # not a ConnectionError: a fresh connection carried it
