"""Whether Redis and the database are reachable, as this process last found out.

Code that talks to a dependency reports what happened: ``failed(component, exc)`` when a call
failed for a reason that is the dependency's (refused, reset, timed out), ``recovered()`` when
it works again. While a dependency is down, callers refuse at once (``check``) instead of each
waiting for its own timeout, and the client gets ``SERVICE_UNAVAILABLE`` with ``retryAfter``
(PROTOCOL.md §8a).

What an operator sees is one WARNING per component per outage and one INFO when it is over
(never a traceback per event), and the metrics ``aeturnis_dependency_up{dependency}`` and
``aeturnis_dependency_outages_total{dependency}``. Process-wide state: a dependency is up or
down for the whole process.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from realtime.core import metrics
from realtime.core.errors import ServiceUnavailable
from realtime.core.redis_client import REDIS_ERRORS

logger = logging.getLogger(__name__)

# How long a caller is told to wait before retrying a request refused for an outage.
RETRY_AFTER_S = 2


class Dependency:
    """One dependency's health in this process (thread-safe: the ORM thread reports too)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._up = True
        self._since = time.monotonic()
        # How many times it went down: a connection made before an outage is not to be trusted.
        self.outages = 0
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        metrics.DEPENDENCY_UP.labels(name).set(1)

    @property
    def up(self) -> bool:
        return self._up

    def check(self) -> None:
        """Raise ``ServiceUnavailable`` while the dependency is known to be down."""
        if not self._up:
            raise ServiceUnavailable(self.name, RETRY_AFTER_S)

    def failed(self, component: str, exc: BaseException | None = None) -> ServiceUnavailable:
        """Record a failure seen by ``component``; returns the exception to raise to callers."""
        with self._lock:
            first = self._up
            if first:
                self._up = False
                self._since = time.monotonic()
                self.outages += 1
                self._warned = set()
                metrics.DEPENDENCY_UP.labels(self.name).set(0)
                metrics.DEPENDENCY_OUTAGES.labels(self.name).inc()
            warn = component not in self._warned
            self._warned.add(component)
        if warn:
            reason = f"{type(exc).__name__}: {exc}" if exc is not None else "unreachable"
            logger.warning("%s unavailable (seen by %s): %s", self.name, component, reason)
        return ServiceUnavailable(self.name, RETRY_AFTER_S)

    def reset(self) -> None:
        """Up, as in a fresh process (tests start every case this way)."""
        with self._lock:
            self._up = True
            self._warned = set()
        metrics.DEPENDENCY_UP.labels(self.name).set(1)

    def recovered(self) -> None:
        """The dependency answered again."""
        with self._lock:
            if self._up:
                return
            self._up = True
            took = time.monotonic() - self._since
            metrics.DEPENDENCY_UP.labels(self.name).set(1)
        logger.info("%s available again after %.1f s", self.name, took)


REDIS = Dependency("redis")
DATABASE = Dependency("database")


P = ParamSpec("P")
T = TypeVar("T")


Operation = Callable[P, Coroutine[Any, Any, T]]


def redis_guarded(component: str) -> Callable[[Operation[P, T]], Operation[P, T]]:
    """Make an async Redis operation refuse at once while Redis is down, and turn Redis
    failing under it into ``ServiceUnavailable`` (reported once per outage for ``component``)."""

    def wrap(operation: Operation[P, T]) -> Operation[P, T]:
        @functools.wraps(operation)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            REDIS.check()
            try:
                return await operation(*args, **kwargs)
            except REDIS_ERRORS as exc:
                raise REDIS.failed(component, exc) from None

        return guarded

    return wrap
