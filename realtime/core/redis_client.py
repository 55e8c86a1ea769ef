"""Redis clients: per event loop (never shared across loops) a redis-py pool and, for the hot
path's scripts and single commands, one pipelined connection (``realtime.core.resp``); one sync
client.

Every call fails fast when Redis is unreachable (1 s to connect or answer, no retries inside
redis-py): the callers report it to ``realtime.core.health.REDIS`` and refuse, instead of
stacking retries while a client waits (PROTOCOL.md §8a).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from realtime.core import resp
from realtime.core.per_loop import PerLoop

_sync_client: redis.Redis | None = None
_sync_lock = threading.Lock()


# Seconds to connect to Redis or to get an answer: past it, Redis counts as unavailable.
SOCKET_TIMEOUT_S = 1.0

# Connections of a process's command pool. A burst (a thousand sockets dropped at once, each
# removing its presence entry) waits for a free connection instead of opening one per caller:
# a new connection costs more CPU than the command it carries, and idle ones stay open for good.
POOL_MAX_CONNECTIONS = 64
# How long a command may wait for a pooled connection. Not an outage signal: every pooled
# connection is itself bounded by SOCKET_TIMEOUT_S, so this only caps a pathological queue.
POOL_WAIT_S = 10.0


class _Connection(aioredis.Connection):
    """redis-py's TCP connection, failing as a connection when its transport was closed.

    When Redis goes away between a pooled connection's health check and a write, uvloop's
    transport raises ``RuntimeError`` ("unable to perform operation on <TCPTransport
    closed=True>"), not an ``OSError``, and redis-py lets it through: callers would see a bug
    where there is only an outage. It is reported as the ``ConnectionError`` it is.
    """

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except RuntimeError as exc:
            if "closed" not in str(exc):
                raise
            raise redis.exceptions.ConnectionError(
                f"Error writing to {self.host}:{self.port}: {exc}"
            ) from exc


def async_options() -> dict[str, Any]:
    """Connection options of every asyncio client (the pool's and the bus's subscriber)."""
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": SOCKET_TIMEOUT_S,
        "retry": AsyncRetry(NoBackoff(), 0),
        "health_check_interval": 30,
    }
    if settings.REDIS_URL.startswith("redis://"):  # TLS and Unix sockets keep their classes
        options["connection_class"] = _Connection
    return options


def redis_enabled() -> bool:
    return bool(settings.REDIS_URL)


def key(*parts: object) -> str:
    """A namespaced Redis key: ``<prefix>:<part>:<part>``."""
    return ":".join([settings.AETURNIS_REDIS_PREFIX, *map(str, parts)])


def _new_async_client() -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        max_connections=POOL_MAX_CONNECTIONS,
        timeout=POOL_WAIT_S,
        **async_options(),
    )
    return aioredis.Redis.from_pool(pool)


_async_clients = PerLoop(_new_async_client)


def async_redis() -> aioredis.Redis:
    return _async_clients.get()


def pipelined() -> bool:
    """Whether the hot path's scripts and commands go over ``realtime.core.resp``'s one
    pipelined connection per loop (plain ``redis://``; TLS and Unix sockets keep redis-py)."""
    return settings.REDIS_URL.startswith("redis://")


def fast_redis() -> resp.PipelinedRedis:
    """This loop's pipelined connection (``pipelined()`` must hold): for single commands of
    the hot path that answer at once, never blocking ones."""
    return resp.pipelined_redis(settings.REDIS_URL, SOCKET_TIMEOUT_S)


def command(*args: resp.Arg) -> Awaitable[Any]:
    """One command that answers at once (never a blocking one), on the loop's pipelined
    connection, or on the pool where there is none; the raw reply (bytes, not decoded)."""
    if pipelined():
        return fast_redis().execute(*args)
    reply: Awaitable[Any] = async_redis().execute_command(*args)  # type: ignore[no-untyped-call]
    return reply


_scripts: dict[str, Any] = {}


def script(lua: str) -> Any:
    """The ``Script`` for ``lua``, made once per source (each hashes it): ``EVALSHA``, sent
    again with its body after a Redis restart. Called as ``script(lua)(keys=…, args=…)`` on the
    loop's pipelined connection, or with ``client=<redis-py pipeline>`` inside one."""
    cached = _scripts.get(lua)
    if pipelined():
        if not isinstance(cached, resp.Script):
            cached = _scripts[lua] = resp.Script(lua, fast_redis)
        return cached
    client = async_redis()
    if getattr(cached, "registered_client", None) is not client:
        cached = _scripts[lua] = client.register_script(lua)
    return cached


def sync_redis() -> redis.Redis:
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            _sync_client = redis.Redis.from_url(
                settings.REDIS_URL,
                socket_timeout=SOCKET_TIMEOUT_S,
                socket_connect_timeout=SOCKET_TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=30,
            )
        return _sync_client


async def close_async_redis() -> None:
    """Close this loop's clients (at shutdown, and between tests that each have a loop)."""
    resp.close_pipelined_redis()
    client = _async_clients.pop()
    if client is not None:
        await client.aclose()


# What a Redis call raises when Redis, not the call, is the problem: down, restarting (still
# loading its data), unreachable, too slow, or a replica after a failover.
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    OSError,
    TimeoutError,
)
