"""Redis clients: one async client per event loop (never shared across loops), one sync client."""

from __future__ import annotations

import asyncio
import threading
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)
_sync_client: redis.Redis | None = None
_sync_lock = threading.Lock()


def redis_enabled() -> bool:
    return bool(settings.REDIS_URL)


def key(*parts: object) -> str:
    """A namespaced Redis key: ``<prefix>:<part>:<part>``."""
    return ":".join([settings.AETURNIS_REDIS_PREFIX, *map(str, parts)])


def async_redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(settings.REDIS_URL, health_check_interval=30)
        _async_clients[loop] = client
    return client


def sync_redis() -> redis.Redis:
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            _sync_client = redis.Redis.from_url(settings.REDIS_URL, health_check_interval=30)
        return _sync_client


async def close_async_redis() -> None:
    """Close this loop's client (at shutdown, and between tests that each have a loop)."""
    client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
