"""Small shared stores with expiry: Redis with ``REDIS_URL``, this process otherwise.

Used for what every process must agree on without the database: blocked IPs. Both async
(consumers) and sync (DRF views, admin) callers are served.
"""

from __future__ import annotations

import threading
import time
from typing import cast

from realtime.core.health import redis_guarded
from realtime.core.redis_client import async_redis, key, redis_enabled, sync_redis


class _LocalExpiring:
    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def set(self, name: str, ttl_s: float) -> None:
        with self._lock:
            now = time.time()
            if len(self._until) > 10_000:  # keep the dict from growing without bound
                self._until = {k: v for k, v in self._until.items() if v > now}
            self._until[name] = now + ttl_s

    def remaining(self, name: str) -> float:
        with self._lock:
            until = self._until.get(name)
            if until is None:
                return 0.0
            left = until - time.time()
            if left <= 0:
                del self._until[name]
                return 0.0
            return left

    def delete(self, name: str) -> None:
        with self._lock:
            self._until.pop(name, None)


_local = _LocalExpiring()


class ExpiringFlags:
    """Named flags that disappear after their TTL, e.g. ``revoked:<jti>``."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def redis_key(self, name: str) -> str:
        """The flag's Redis key (for scripts that read it along with other keys)."""
        return key(self.namespace, name)

    def set(self, name: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        if redis_enabled():
            sync_redis().set(self.redis_key(name), 1, px=max(1, int(ttl_s * 1000)))
        else:
            _local.set(self.redis_key(name), ttl_s)

    @redis_guarded("blocked-ips")
    async def aset(self, name: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        if redis_enabled():
            await async_redis().set(self.redis_key(name), 1, px=max(1, int(ttl_s * 1000)))
        else:
            _local.set(self.redis_key(name), ttl_s)

    def remaining(self, name: str) -> float:
        """Seconds until the flag expires; 0 when it is not set."""
        if redis_enabled():
            pttl = cast(int, sync_redis().pttl(self.redis_key(name)))
            return max(0.0, pttl / 1000)
        return _local.remaining(self.redis_key(name))

    @redis_guarded("blocked-ips")
    async def aremaining(self, name: str) -> float:
        if redis_enabled():
            pttl: int = await async_redis().pttl(self.redis_key(name))
            return max(0.0, pttl / 1000)
        return _local.remaining(self.redis_key(name))

    @redis_guarded("blocked-ips")
    async def adelete(self, name: str) -> None:
        if redis_enabled():
            await async_redis().delete(self.redis_key(name))
        else:
            _local.delete(self.redis_key(name))

    def delete(self, name: str) -> None:
        if redis_enabled():
            sync_redis().delete(self.redis_key(name))
        else:
            _local.delete(self.redis_key(name))


blocked_ips = ExpiringFlags("blocked-ip")
