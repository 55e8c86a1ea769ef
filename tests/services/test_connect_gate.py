"""The connect gate's per-IP state (PROTOCOL.md §2, §6): both backends, one behaviour; with
Redis, one window shared by every process and the same one ``RateLimiter`` keeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from realtime.core.redis_client import close_async_redis
from realtime.state.gate import GateReading, connect_gate
from realtime.state.ratelimit import RateLimiter
from realtime.state.stores import blocked_ips
from tests.e2e.conftest import free_port
from tests.faults.redis_server import RedisServer, redis_server_binary

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")

IP = "10.20.30.40"
PASSED = GateReading(connect_blocked=False, limited=False, auth_blocked=False, failures=False)


@pytest.fixture(params=["local", pytest.param("redis", marks=needs_redis)])
async def backend(request: pytest.FixtureRequest, settings: Any) -> AsyncIterator[str]:
    settings.AETURNIS_RATE_LIMITS = {"connect": "3/60", "auth_failures": "5/900"}
    if request.param == "local":
        settings.REDIS_URL = ""
    yield request.param
    await close_async_redis()


def passed(backend: str) -> GateReading:
    # In this process, clearing the failures costs nothing, so the gate always asks for it.
    return PASSED if backend == "redis" else GateReading(False, False, False, True)


async def test_connections_under_the_limit_pass_and_the_one_over_blocks_the_ip(
    backend: str,
) -> None:
    limiter = RateLimiter()
    for _ in range(3):
        assert await connect_gate(IP, limiter) == passed(backend)

    over = await connect_gate(IP, limiter)
    assert over.refused and over.limited and not over.connect_blocked
    assert await blocked_ips.aremaining(f"connect:{IP}") > 290

    after = await connect_gate(IP, limiter)
    assert after.refused and after.connect_blocked and not after.limited
    assert await connect_gate("10.20.30.41", limiter) == passed(backend)


async def test_a_blocked_ip_is_refused_and_its_attempts_are_not_counted(backend: str) -> None:
    limiter = RateLimiter()
    await blocked_ips.aset(f"connect:{IP}", 300)

    for _ in range(5):
        reading = await connect_gate(IP, limiter)
        assert reading.refused and reading.connect_blocked and not reading.limited

    assert await limiter.count("connect", IP) == 0


async def test_the_auth_block_is_read_after_the_connection_counted(backend: str) -> None:
    limiter = RateLimiter()
    await blocked_ips.aset(f"auth:{IP}", 900)

    reading = await connect_gate(IP, limiter)

    assert not reading.refused and reading.auth_blocked
    assert await limiter.count("connect", IP) == 1


@needs_redis
async def test_the_gate_reports_failures_on_record_only_when_there_are_some(backend: str) -> None:
    if backend != "redis":
        pytest.skip("the in-process gate always clears")
    limiter = RateLimiter()
    assert not (await connect_gate(IP, limiter)).failures
    await limiter.hit("auth_failures", IP)
    assert (await connect_gate(IP, limiter)).failures
    await limiter.clear("auth_failures", IP)
    assert not (await connect_gate(IP, limiter)).failures


@needs_redis
async def test_two_processes_share_one_connect_window_with_the_rate_limiter(
    backend: str,
) -> None:
    if backend != "redis":
        pytest.skip("one process only without Redis")
    first, second = RateLimiter(), RateLimiter()  # as two server processes hold them
    assert (await first.hit("connect", IP)).allowed  # the limiter's own hit counts too
    assert await connect_gate(IP, second) == PASSED
    assert await connect_gate(IP, first) == PASSED
    assert await first.count("connect", IP) == 3

    over = await connect_gate(IP, second)

    assert over.limited
    assert (await connect_gate(IP, first)).connect_blocked


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if not settings.REDIS_URL or redis_server_binary() is None:
        pytest.skip("needs REDIS_URL and redis-server")
    server = RedisServer(tmp_path / "redis", free_port()).start()
    yield server
    server.stop()


async def test_the_gate_script_is_loaded_again_after_redis_forgot_it(
    private_redis: RedisServer,
) -> None:
    with override_settings(REDIS_URL=private_redis.url):
        limiter = RateLimiter()
        assert await connect_gate(IP, limiter) == PASSED
        client = private_redis.client()
        client.script_flush()  # what a restarted Redis knows of scripts
        client.close()

        assert await connect_gate(IP, limiter) == PASSED
        assert await limiter.count("connect", IP) == 2
        await close_async_redis()
