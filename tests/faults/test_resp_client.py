"""The pipelined Redis connection (``realtime.core.resp``) against a real, private redis-server.

Replies reach their own callers however many are in flight, an error reply fails only its
command, a caller that stops waiting shifts nobody, and the failure rules of the redis-py pool
hold: a stalled Redis fails the waiting commands after the timeout, a killed one fails them as
a connection error, and the next command after a restart is served by a new connection. Each
test runs on asyncio's loop and on uvloop (uvicorn's), whose transports differ.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
import uvloop

from realtime.core.eager import settle, started
from realtime.core.redis_client import REDIS_ERRORS
from realtime.core.resp import PipelinedRedis, Script, close_pipelined_redis, pipelined_redis
from tests.faults.conftest import requires_fault_env
from tests.faults.proxy import FaultProxy
from tests.faults.redis_server import RedisServer

pytestmark = [pytest.mark.faults, pytest.mark.redis, requires_fault_env]

TIMEOUT_S = 1.0
LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Iterator[Callable[[Awaitable[Any]], Any]]:
    with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:

        def run_one(scenario: Awaitable[Any]) -> Any:
            return runner.run(_within(scenario))

        yield run_one


@contextlib.contextmanager
def connection(url: str) -> Iterator[PipelinedRedis]:
    """A pipelined connection of the test's own, closed after it."""
    client = PipelinedRedis(url, TIMEOUT_S)
    try:
        yield client
    finally:
        client.close()


async def _within(scenario: Awaitable[Any]) -> Any:
    async with asyncio.timeout(30):  # a hang fails the test instead of the suite
        return await scenario


def test_concurrent_commands_each_get_their_own_reply(
    run: Callable[[Awaitable[Any]], Any], redis_server: RedisServer
) -> None:
    async def scenario() -> list[Any]:
        with connection(redis_server.url) as client:
            writes = [client.execute("SET", f"k{i}", f"v{i}") for i in range(300)]
            reads = [client.execute("GET", f"k{i}") for i in range(300)]
            counts = [client.execute("INCRBY", "n", i) for i in range(1, 301)]
            await asyncio.gather(*writes)
            return await asyncio.gather(*reads, *counts)

    replies = run(scenario())
    assert replies[:300] == [f"v{i}".encode() for i in range(300)]
    assert replies[300:] == [sum(range(1, i + 1)) for i in range(1, 301)]


def test_an_error_reply_fails_only_its_command(
    run: Callable[[Awaitable[Any]], Any], redis_server: RedisServer
) -> None:
    async def scenario() -> tuple[list[Any], Any]:
        with connection(redis_server.url) as client:
            await client.execute("SET", "text", "not a number")
            replies = await asyncio.gather(
                client.execute("INCR", "text"),
                client.execute("NOSUCHCOMMAND"),
                client.execute("INCR", "counter"),
                return_exceptions=True,
            )
            return replies, await client.execute("GET", "counter")

    (bad_type, unknown, counted), after = run(scenario())
    assert isinstance(bad_type, redis.exceptions.ResponseError), repr(bad_type)
    assert isinstance(unknown, redis.exceptions.ResponseError), repr(unknown)
    assert not isinstance(bad_type, REDIS_ERRORS)  # a bad command is no outage
    assert counted == 1
    assert after == b"1"


def test_a_caller_that_stops_waiting_shifts_no_other_reply(
    run: Callable[[Awaitable[Any]], Any], redis_server: RedisServer
) -> None:
    async def scenario() -> list[Any]:
        with connection(redis_server.url) as client:
            await client.execute("MSET", "a", "1", "b", "2", "c", "3")

            async def get(name: str) -> Any:
                return await client.execute("GET", name)

            first = asyncio.ensure_future(get("a"))
            await asyncio.sleep(0)  # sent, not answered yet
            first.cancel()
            return list(await asyncio.gather(get("b"), get("c")))

    assert run(scenario()) == [b"2", b"3"]


def test_a_script_unknown_to_redis_is_sent_again_with_its_body(
    run: Callable[[Awaitable[Any]], Any], redis_server: RedisServer
) -> None:
    lua = "return redis.call('INCRBY', KEYS[1], ARGV[1])"

    async def scenario() -> list[Any]:
        with connection(redis_server.url) as client:
            increment = Script(lua, lambda: client)
            first = await increment(keys=["s"], args=[2])  # unknown: EVAL
            second = await increment(keys=["s"], args=[3])  # known now: EVALSHA
            await client.execute("SCRIPT", "FLUSH")  # as after a restart
            third = await increment(keys=["s"], args=[4])
            return [first, second, third]

    assert run(scenario()) == [2, 5, 9]


def test_scripts_started_back_to_back_are_all_written_before_the_first_reply_is_awaited(
    run: Callable[[Awaitable[Any]], Any], redis_server: RedisServer
) -> None:
    """``realtime.core.eager``: independent steps of one connection share one round trip."""
    lua = "return redis.call('INCRBY', KEYS[1], ARGV[1])"

    async def step(script: Script, amount: int) -> Any:
        return await script(keys=["together"], args=[amount])

    async def scenario() -> tuple[int, list[Any]]:
        with connection(redis_server.url) as client:
            add = Script(lua, lambda: client)
            await add(keys=["together"], args=[0])  # known to Redis from here on
            runs = [started(step(add, n)) for n in (1, 10, 100)]
            in_flight = len(client._connection._pending)  # type: ignore[union-attr]
            return in_flight, await settle(*runs)

    assert run(scenario()) == (3, [1, 11, 111])  # run by Redis in the order started


def test_password_and_database_of_the_url_are_used(
    run: Callable[[Awaitable[Any]], Any], redis_server: RedisServer
) -> None:
    direct = redis_server.client()
    direct.config_set("requirepass", "s3cret")
    url = f"redis://:s3cret@127.0.0.1:{redis_server.port}/3"

    async def scenario() -> Any:
        with connection(url) as client:
            return await client.execute("SET", "in-db-3", "yes")

    try:
        assert run(scenario()) == b"OK"
        direct.execute_command("AUTH", "s3cret")
        direct.execute_command("SELECT", 3)
        assert direct.get("in-db-3") == b"yes"
        direct.execute_command("SELECT", 0)
        assert direct.get("in-db-3") is None
    finally:
        direct.config_set("requirepass", "")
        direct.close()


def test_a_stalled_redis_fails_waiting_commands_after_the_timeout_then_serves_again(
    run: Callable[[Awaitable[Any]], Any], redis_proxy: FaultProxy
) -> None:
    url = f"redis://127.0.0.1:{redis_proxy.port}/0"

    async def scenario() -> tuple[list[Any], Any]:
        with connection(url) as client:
            await client.execute("SET", "x", "1")
            redis_proxy.stall()
            stalled = await asyncio.gather(
                *(client.execute("GET", "x") for _ in range(20)), return_exceptions=True
            )
            redis_proxy.restore()
            return stalled, await client.execute("GET", "x")

    stalled, after = run(scenario())
    assert all(isinstance(e, redis.exceptions.TimeoutError) for e in stalled), stalled
    assert all(isinstance(e, REDIS_ERRORS) for e in stalled)
    assert after == b"1"


def test_a_killed_redis_fails_commands_as_an_outage_and_a_restarted_one_serves_the_next(
    run: Callable[[Awaitable[Any]], Any], redis_server: RedisServer
) -> None:
    async def scenario() -> tuple[list[Any], Any]:
        client = pipelined_redis(redis_server.url, TIMEOUT_S)
        try:
            await client.execute("SET", "x", "1")
            redis_server.kill()
            down = await asyncio.gather(
                client.execute("GET", "x"), client.execute("GET", "x"), return_exceptions=True
            )
            redis_server.start()  # empty again: no persistence
            return down, await client.execute("SET", "x", "2")
        finally:
            close_pipelined_redis()

    down, first_after_restart = run(scenario())
    assert all(isinstance(e, redis.exceptions.ConnectionError) for e in down), down
    assert first_after_restart == b"OK"


def test_closing_fails_the_commands_still_waiting(
    run: Callable[[Awaitable[Any]], Any], redis_proxy: FaultProxy
) -> None:
    url = f"redis://127.0.0.1:{redis_proxy.port}/0"

    async def scenario() -> list[Any]:
        client = PipelinedRedis(url, TIMEOUT_S)
        await client.execute("PING")
        redis_proxy.stall()
        try:
            waiting = [asyncio.ensure_future(client.execute("PING")) for _ in range(3)]
            await asyncio.sleep(0)
            client.close()
            return await asyncio.gather(*waiting, return_exceptions=True)
        finally:
            redis_proxy.restore()

    closed = run(scenario())
    assert all(isinstance(e, redis.exceptions.ConnectionError) for e in closed), closed
