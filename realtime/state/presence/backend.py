"""Which presence store this process uses."""

from __future__ import annotations

from realtime.core.redis_client import redis_enabled
from realtime.state.presence.store import LocalPresenceStore, PresenceStore
from realtime.state.presence.store_redis import RedisPresenceStore


def make_presence_store() -> PresenceStore:
    """Redis when ``REDIS_URL`` is set (many processes), this process otherwise."""
    if redis_enabled():
        return RedisPresenceStore()
    return LocalPresenceStore()
