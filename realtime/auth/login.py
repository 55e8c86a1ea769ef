"""Password logins over HTTP (``POST /api/auth/token/``): failure limits and a bounded hash.

A password check costs ~270 ms of CPU (PBKDF2), so an open login endpoint is a CPU
denial-of-service (issues #13, #19). Two guards, both decided before any hash:

* **Failure limits.** Failed logins count per client IP (``login_failures_ip``, default 10 per
  300 s) and per username (``login_failures_user``, 5 per 300 s) in ``limits``' moving window,
  shared by every process through Redis (process-local in the embedded default). While either
  window is full, a login is refused (``LoginThrottled``) with the seconds until its oldest
  failure leaves the window; a correct password is refused too, or guessing would go on. A
  success clears the username's count, not the IP's: one account of their own must not let
  someone reset their address's count between guesses. These counters are not the
  WebSocket's (``auth_failures``, a 15-minute block of the IP, ``auth/handshake.py``).
* **Bounded hashing.** At most ``AETURNIS_PASSWORD_HASH_CONCURRENCY`` password checks run at
  once per process, in threads of their own (never the thread the game's database work queues
  on); a login that finds no free slot within ``AETURNIS_PASSWORD_HASH_WAIT_S`` is refused
  (``PasswordChecksBusy``). So a flood costs each process at most that many cores, and the
  event loop keeps the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import redis.exceptions
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.db import close_old_connections
from django.http import HttpRequest
from django.utils.module_loading import import_string
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from realtime.core.per_loop import PerLoop
from realtime.core.redis_client import redis_enabled
from realtime.state.ratelimit import RateLimiter, Verdict

logger = logging.getLogger(__name__)

FAILURES_PER_IP = "login_failures_ip"
FAILURES_PER_USER = "login_failures_user"

T = TypeVar("T")


class LoginThrottled(Exception):
    """The client IP or the username is over its failure limit."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class LoginFailed(Exception):
    """Wrong credentials, or an inactive account (simplejwt's ``no_active_account``)."""


class PasswordChecksBusy(Exception):
    """No password-check slot of this process became free in time."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


def username_key(username: str) -> str:
    """The limiter identity of a username: a digest, so any string makes a short key.
    Usernames are compared exactly (as Django's ModelBackend looks them up)."""
    return hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class LoginThrottle:
    """The failure limits. With Redis, a process-local window stands in while Redis is
    unreachable (PROTOCOL.md §8a: limits degrade to what the process can enforce alone)."""

    def __init__(self) -> None:
        self._shared = RateLimiter()
        self._local = RateLimiter(local=True) if redis_enabled() else self._shared
        self._degraded = False

    async def _on_limiter(self, call: Callable[[RateLimiter], Awaitable[T]]) -> T:
        try:
            result = await call(self._shared)
        except (redis.exceptions.RedisError, OSError) as exc:
            if not self._degraded:
                logger.warning("login limits fall back to this process: Redis failed (%s)", exc)
                self._degraded = True
            return await call(self._local)
        if self._degraded:
            logger.info("login limits are shared through Redis again")
            self._degraded = False
        return result

    def _identities(self, ip: str, username: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return (FAILURES_PER_IP, ip), (FAILURES_PER_USER, username_key(username))

    async def _peek(self, bucket: str, identity: str) -> Verdict:
        return await self._on_limiter(lambda limiter: limiter.peek(bucket, identity))

    async def _hit(self, bucket: str, identity: str) -> Verdict:
        return await self._on_limiter(lambda limiter: limiter.hit(bucket, identity))

    async def check(self, *, ip: str, username: str) -> None:
        """Raise ``LoginThrottled`` when ``ip`` or ``username`` is over its failure limit."""
        waits = []
        for bucket, identity in self._identities(ip, username):
            verdict = await self._peek(bucket, identity)
            if not verdict.allowed:
                waits.append(verdict.retry_after)
        if waits:
            raise LoginThrottled(max(waits))

    async def failed(self, *, ip: str, username: str) -> None:
        """Count a failed login against ``ip`` and ``username``; log when one is now full."""
        for bucket, identity in self._identities(ip, username):
            await self._hit(bucket, identity)
            verdict = await self._peek(bucket, identity)
            if not verdict.allowed:
                logger.warning(
                    "failed logins: %s reached %s from %s for %r; refused for %d s",
                    bucket,
                    self._shared.limits[bucket].amount,
                    ip,
                    username[:150],
                    verdict.retry_after,
                )

    async def succeeded(self, *, username: str) -> None:
        """Forget the username's failures (not the IP's)."""
        identity = username_key(username)
        await self._on_limiter(lambda limiter: limiter.clear(FAILURES_PER_USER, identity))


# One pool per size, shared by every event loop of the process: its threads are the bound.
_executors: dict[int, ThreadPoolExecutor] = {}


def _executor(size: int) -> ThreadPoolExecutor:
    executor = _executors.get(size)
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="password-check")
        _executors[size] = executor
    return executor


def _release_later(loop: asyncio.AbstractEventLoop, slots: asyncio.Semaphore) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: its slots died with it
        loop.call_soon_threadsafe(slots.release)


class PasswordCheckGate:
    """At most ``concurrency`` password checks at once; others wait up to ``wait_s``."""

    def __init__(self, concurrency: int, wait_s: float) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._executor = _executor(concurrency)
        self._wait_s = wait_s

    async def run(
        self, check: Callable[[], T], *, first: Callable[[], Awaitable[None]] | None = None
    ) -> T:
        """``check()`` in a password-check thread, once a slot is free; raises
        ``PasswordChecksBusy`` when none freed within the wait. ``first`` runs when the slot
        is taken, before the thread (what it raises is passed on, and the slot freed). A slot
        is freed when the check ends, even if the caller stopped waiting for it: a client
        that went away must not let more hashes run at once."""
        try:
            async with asyncio.timeout(self._wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise PasswordChecksBusy(max(1, math.ceil(self._wait_s))) from None
        loop = asyncio.get_running_loop()
        try:
            if first is not None:
                await first()
            future: Future[T] = self._executor.submit(check)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: _release_later(loop, self._slots))
        return await asyncio.wrap_future(future)


def check_password_and_issue(
    request: HttpRequest | None, username: str, password: str
) -> dict[str, str] | None:
    """Django's ``authenticate`` and, for an active account, simplejwt's token pair (with its
    configured serializer's claims); None when the credentials fail. Runs in a
    password-check thread, so it closes that thread's database connection as
    ``database_sync_to_async`` would."""
    close_old_connections()
    try:
        user: Any = authenticate(request, username=username, password=password)
        if not jwt_settings.USER_AUTHENTICATION_RULE(user):
            return None
        serializer = import_string(jwt_settings.TOKEN_OBTAIN_SERIALIZER)
        refresh = serializer.get_token(user)
        if jwt_settings.UPDATE_LAST_LOGIN:
            update_last_login(type(user), user)
        return {"refresh": str(refresh), "access": str(refresh.access_token)}
    finally:
        close_old_connections()


class LoginGuard:
    """This event loop's throttle and gate (the limiter's Redis client must not cross loops)."""

    def __init__(self) -> None:
        self.throttle = LoginThrottle()
        self.gate = PasswordCheckGate(
            settings.AETURNIS_PASSWORD_HASH_CONCURRENCY, settings.AETURNIS_PASSWORD_HASH_WAIT_S
        )


_guards = PerLoop(LoginGuard)


def login_guard() -> LoginGuard:
    """The running loop's ``LoginGuard`` (made on first use)."""
    return _guards.get()


# Logins whose client went away while their password was checked: still settled (counted).
_settling: set[asyncio.Task[Any]] = set()


def _settled(task: asyncio.Task[Any]) -> None:
    _settling.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: nobody else will for a client that went away


async def login(request: HttpRequest, *, ip: str, username: str, password: str) -> dict[str, str]:
    """The token pair for ``username``/``password`` from ``ip``.

    Raises ``LoginThrottled`` or ``PasswordChecksBusy`` before any hash, and ``LoginFailed``
    for wrong credentials (counted against ``ip`` and ``username``). Once past the first
    check, a login is carried through even if its caller is cancelled (Django cancels a
    view whose client disconnects): hanging up must not spare a wrong password its count.
    """
    guard = login_guard()

    async def still_allowed() -> None:
        # Again once this login's turn came: failures recorded while it waited count.
        await guard.throttle.check(ip=ip, username=username)

    async def settle() -> dict[str, str]:
        tokens = await guard.gate.run(
            lambda: check_password_and_issue(request, username, password), first=still_allowed
        )
        if tokens is None:
            await guard.throttle.failed(ip=ip, username=username)
            raise LoginFailed
        await guard.throttle.succeeded(username=username)
        return tokens

    await still_allowed()
    task = asyncio.ensure_future(settle())
    _settling.add(task)
    task.add_done_callback(_settled)
    return await asyncio.shield(task)
