"""Sliding-window rate limits per user and event, shared by every process (PROTOCOL.md §6).

Built on ``limits``' moving window: a call over the limit is not recorded, so rejected calls do
not count against the window, and ``retry_after`` is the true time until the oldest call in the
window leaves it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.redis.bridge import RedisBridge
from limits.aio.strategies import MovingWindowRateLimiter

from realtime.core.health import REDIS
from realtime.core.redis_client import REDIS_ERRORS, async_redis, redis_enabled, script

DEFAULT_LIMITS: dict[str, str] = {
    "chat:message": "10/60",
    "chat:whisper": "5/60",
    "chat:emote": "15/60",
    "chat:typing": "30/60",
    "character:move": "30/60",
    "character:action": "20/60",
    "character:select": "3/300",
    "combat:action": "20/60",
    "combat:start": "5/60",
    "combat:challenge": "5/60",
    "combat:flee": "3/60",
    "ping": "60/60",
    # Per client IP.
    "connect": "10/60",
    "auth_failures": "5/900",
    # Failed logins over HTTP (POST /api/auth/token/), checked before the password hash: per
    # client IP and per username. Separate from the WebSocket's ``auth_failures``.
    "login_failures_ip": "10/300",
    "login_failures_user": "5/300",
}

# ``limits``' own script for a moving-window hit (KEYS: the window; ARGV: timestamp, limit,
# expiry, amount), run through ``script()`` so a hit rides the loop's pipelined connection
# instead of a pooled one; the window and its semantics stay the library's.
ACQUIRE_LUA = RedisBridge.SCRIPT_ACQUIRE_MOVING_WINDOW.decode()

# How long an IP stays blocked once it is over its limit.
BLOCK_SECONDS = {"connect": 300, "auth_failures": 900}


def parse_limit(spec: str) -> RateLimitItem:
    """``"10/60"`` → 10 calls per 60 seconds."""
    try:
        count_s, seconds_s = spec.split("/")
        count, seconds = int(count_s), int(seconds_s)
    except ValueError as exc:
        raise ImproperlyConfigured(f"rate limit {spec!r} is not 'count/seconds'") from exc
    if count < 1 or seconds < 1:
        raise ImproperlyConfigured(f"rate limit {spec!r} must be positive")
    return RateLimitItemPerSecond(count, seconds)


def configured_limits() -> dict[str, RateLimitItem]:
    specs = {**DEFAULT_LIMITS, **settings.AETURNIS_RATE_LIMITS}
    return {name: parse_limit(str(spec)) for name, spec in specs.items()}


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


def retry_after_seconds(reset_time: float, now: float) -> int:
    """Whole seconds (rounded up, at least 1) until a call would pass again."""
    return max(1, math.ceil(reset_time - now))


class RateLimiter:
    """One per event loop (its Redis client must not cross loops).

    Shared through Redis with ``REDIS_URL``, else in this process; ``local=True`` keeps it in
    this process whatever the settings. A shared limiter degrades to what this process can
    enforce alone while Redis is unavailable (PROTOCOL.md §8a), and is shared again when it is
    back: calls over the limit on this process are still refused meanwhile.
    """

    def __init__(self, *, local: bool = False) -> None:
        storage: Storage
        self._fallback: RateLimiter | None = None
        self._key_prefix = f"{settings.AETURNIS_REDIS_PREFIX}:limits"
        if redis_enabled() and not local:
            self._fallback = RateLimiter(local=True)
            uri = settings.REDIS_URL.replace("redis://", "async+redis://", 1).replace(
                "rediss://", "async+rediss://", 1
            )
            # Share this loop's client pool, so the limiter's connections close with it.
            storage = RedisStorage(
                uri,
                implementation="redispy",
                key_prefix=self._key_prefix,
                connection_pool=async_redis().connection_pool,  # type: ignore[arg-type]
            )
        else:
            storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(storage)
        self.limits = configured_limits()

    @property
    def shared(self) -> bool:
        """Whether the windows live in Redis (shared by every process)."""
        return self._fallback is not None

    def redis_key(self, bucket: str, identity: str) -> str:
        """The Redis key of ``bucket``'s moving window for ``identity`` (a list of the allowed
        calls' times, as ``limits`` keeps it), for scripts that hit a limit along with other
        work in one round trip (``realtime.state.gate``)."""
        return f"{self._key_prefix}:{self.limits[bucket].key_for(bucket, identity)}"

    async def hit(self, bucket: str, identity: str) -> Verdict:
        """Record one call in ``bucket`` for ``identity`` unless it is over the limit."""
        fallback = self._fallback
        if fallback is not None:
            if not REDIS.up:
                return await fallback.hit(bucket, identity)
            try:
                return await self._hit(bucket, identity)
            except REDIS_ERRORS as exc:
                REDIS.failed("limits", exc)
                return await fallback.hit(bucket, identity)
        return await self._hit(bucket, identity)

    async def _hit(self, bucket: str, identity: str) -> Verdict:
        item = self.limits.get(bucket)
        if item is None:
            return Verdict(True)
        if self.shared:
            args = [time.time(), item.amount, item.get_expiry(), 1]
            if await script(ACQUIRE_LUA)(keys=[self.redis_key(bucket, identity)], args=args):
                return Verdict(True)
        elif await self._limiter.hit(item, bucket, identity):
            return Verdict(True)
        stats = await self._limiter.get_window_stats(item, bucket, identity)
        return Verdict(False, retry_after_seconds(stats.reset_time, time.time()))

    async def peek(self, bucket: str, identity: str) -> Verdict:
        """Whether a hit would pass now, without recording one (one storage round trip)."""
        fallback = self._fallback
        if fallback is not None:
            if not REDIS.up:
                return await fallback.peek(bucket, identity)
            try:
                return await self._peek(bucket, identity)
            except REDIS_ERRORS as exc:
                REDIS.failed("limits", exc)
                return await fallback.peek(bucket, identity)
        return await self._peek(bucket, identity)

    async def _peek(self, bucket: str, identity: str) -> Verdict:
        item = self.limits.get(bucket)
        if item is None:
            return Verdict(True)
        stats = await self._limiter.get_window_stats(item, bucket, identity)
        if stats.remaining > 0:
            return Verdict(True)
        return Verdict(False, retry_after_seconds(stats.reset_time, time.time()))

    async def count(self, bucket: str, identity: str) -> int:
        """How many calls are in the window now."""
        fallback = self._fallback
        if fallback is not None:
            if not REDIS.up:
                return await fallback.count(bucket, identity)
            try:
                return await self._count(bucket, identity)
            except REDIS_ERRORS as exc:
                REDIS.failed("limits", exc)
                return await fallback.count(bucket, identity)
        return await self._count(bucket, identity)

    async def _count(self, bucket: str, identity: str) -> int:
        item = self.limits[bucket]
        stats = await self._limiter.get_window_stats(item, bucket, identity)
        return item.amount - stats.remaining

    async def clear(self, bucket: str, identity: str, *, shared: bool = True) -> None:
        """Forget ``identity``'s calls in ``bucket``; ``shared=False``: only this process's
        fallback window (the caller knows the shared one holds nothing)."""
        item = self.limits.get(bucket)
        if item is None:
            return
        if self._fallback is not None:
            await self._fallback.clear(bucket, identity)
            if not REDIS.up or not shared:
                return
            try:
                await self._limiter.clear(item, bucket, identity)
            except REDIS_ERRORS as exc:
                REDIS.failed("limits", exc)
            return
        await self._limiter.clear(item, bucket, identity)
