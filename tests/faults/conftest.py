"""Fault-injection harness: real servers whose Redis and PostgreSQL a test can cut, stall, kill.

Built on the e2e harness (``tests/e2e/conftest.py``: ``server_factory``, ``subprocess_env``,
``ServerProcess``, log capture and logs attached to failing tests), plus:

- ``redis_server``: a private ``redis-server`` on a free port, no persistence, files under the
  test's tmp dir; ``.kill()`` (SIGKILL), ``.stop()`` (SIGTERM), ``.start()`` on the same port.
- ``redis_proxy`` / ``pg_proxy``: a ``FaultProxy`` (tests/faults/proxy.py) in front of that Redis
  and in front of the shared PostgreSQL (127.0.0.1:5432): ``.cut()``, ``.stall()``,
  ``.restore()``, ``.port``, ``.stats``. PostgreSQL itself is never stopped: only the proxy
  breaks, so only the servers under test lose it; the test process keeps its direct connection
  (it creates players and reads rows during an outage).
- ``rig``: the three above plus ``rig.start(*kinds, extra_env=...)``, which starts daphne/uvicorn
  processes with ``REDIS_URL`` and ``DATABASE_URL`` pointing at the proxies (the database is
  pytest-django's test database) and an ``AETURNIS_REDIS_PREFIX`` of the test's own.

Every module here is marked ``faults`` and ``e2e`` and needs ``DATABASE_URL`` (PostgreSQL),
``REDIS_URL`` and a ``redis-server`` binary; without them it is skipped. Tests marked ``slow``
run only with ``AETURNIS_SLOW_TESTS=1`` (docs/FAULTS.md).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

# The e2e harness's fixtures and hooks, shared: same servers, same log capture, same prefix.
from tests.e2e.conftest import (  # noqa: F401 (fixtures and hooks pytest finds by name)
    HAVE_POSTGRES,
    HAVE_REDIS,
    RELAXED_IP_LIMITS,
    ServerProcess,
    _e2e_redis_keys_removed,
    free_port,
    http_request,
    port_server_factory,
    pytest_configure,
    pytest_runtest_makereport,
    pytest_runtest_setup,
    server_database_url,
    server_factory,
    server_pool,
)
from tests.faults.proxy import FaultProxy
from tests.faults.redis_server import RedisServer, redis_server_binary

SLOW_ENABLED = os.environ.get("AETURNIS_SLOW_TESTS") == "1"

requires_fault_env = pytest.mark.skipif(
    not (HAVE_POSTGRES and HAVE_REDIS and redis_server_binary()),
    reason="faults: needs DATABASE_URL (PostgreSQL), REDIS_URL and a redis-server binary",
)
slow = pytest.mark.skipif(
    not SLOW_ENABLED, reason="slow: set AETURNIS_SLOW_TESTS=1 to run (docs/FAULTS.md)"
)

# Rate limits of fault servers: per-IP limits off (every client is 127.0.0.1), and room for
# the few hundred pings, moves and messages one test sends per user to measure latency. The
# limits library costs O(limit) per hit, so these stay in the hundreds (PITFALLS.md).
FAULT_RATE_LIMITS = {
    **json.loads(RELAXED_IP_LIMITS),
    "ping": "1000/60",
    "character:move": "600/60",
    "chat:message": "600/60",
    "chat:emote": "600/60",
    "chat:typing": "600/60",
}


def rate_limits_env(**extra: str) -> str:
    return json.dumps({**FAULT_RATE_LIMITS, **extra})


# --- the dependencies ------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", free_port()).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_proxy(redis_server: RedisServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy("redis", "127.0.0.1", redis_server.port).start()
    try:
        yield proxy
    finally:
        proxy.close()


def postgres_address() -> tuple[str, int]:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return parts.hostname or "127.0.0.1", parts.port or 5432


@pytest.fixture
def pg_proxy() -> Iterator[FaultProxy]:
    proxy = FaultProxy("postgres", *postgres_address()).start()
    try:
        yield proxy
    finally:
        proxy.close()


def proxied_database_url(proxy: FaultProxy) -> str:
    """The servers' ``DATABASE_URL`` (pytest-django's test database), through ``proxy``."""
    parts = urlsplit(server_database_url())
    userinfo, _, _ = parts.netloc.rpartition("@")
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# --- servers behind the proxies ----------------------------------------------------------------


@dataclass
class Rig:
    """The dependencies of one test and a way to start servers that use them."""

    redis: RedisServer
    redis_proxy: FaultProxy
    pg_proxy: FaultProxy
    env: dict[str, str]
    _factory: Callable[..., list[ServerProcess]]

    @property
    def prefix(self) -> str:
        return self.env["AETURNIS_REDIS_PREFIX"]

    def start(self, *kinds: str, extra_env: dict[str, str] | None = None) -> list[ServerProcess]:
        """Start ``kinds`` at once (``"daphne"``, ``"uvicorn"``); on return each is ready
        (``/readyz`` 200: it reached both dependencies) and did so through the proxies."""
        servers = self._factory(*kinds, extra_env={**self.env, **(extra_env or {})})
        pg_before = self.pg_proxy.stats.upstream_connects
        redis_before = self.redis_proxy.stats.upstream_connects
        for server in servers:
            status, body = http_request("GET", f"{server.http_url}/readyz")
            assert status == 200, (server.name, status, body)
        # A fault injected at a proxy proves nothing if the servers went around it.
        assert self.pg_proxy.stats.upstream_connects > pg_before, "PostgreSQL proxy bypassed"
        assert self.redis_proxy.stats.upstream_connects > redis_before, "Redis proxy bypassed"
        return servers

    def start_direct(
        self, *kinds: str, extra_env: dict[str, str] | None = None
    ) -> list[ServerProcess]:
        """Like ``start``, but connected straight to the private Redis and to PostgreSQL: for
        tests that break neither and must not pay for the proxies (which share the test
        process with its clients)."""
        direct = {"REDIS_URL": self.redis.url, "DATABASE_URL": server_database_url()}
        return self._factory(*kinds, extra_env={**self.env, **direct, **(extra_env or {})})


@pytest.fixture
def rig(
    django_db_setup: Any,
    redis_server: RedisServer,
    redis_proxy: FaultProxy,
    pg_proxy: FaultProxy,
    server_factory: Callable[..., list[ServerProcess]],  # noqa: F811 (the imported fixture)
) -> Iterator[Rig]:
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}/0",
        "DATABASE_URL": proxied_database_url(pg_proxy),
        "AETURNIS_REDIS_PREFIX": f"faults-{uuid.uuid4().hex[:10]}",
        "AETURNIS_RATE_LIMITS": rate_limits_env(),
    }
    yield Rig(redis_server, redis_proxy, pg_proxy, env, server_factory)
    # Heal whatever a failed test left broken before its servers are stopped (this runs before
    # server_factory's teardown), so they shut down as usual instead of waiting to be killed.
    redis_proxy.restore()
    pg_proxy.restore()
    if not redis_server.running():
        redis_server.start()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures the fault tests measured (docs/FAULTS.md, "What happens when…")."""
    from tests.faults.support import FIGURES

    if FIGURES:
        terminalreporter.section("fault figures")
        for test, name, value in FIGURES:
            terminalreporter.write_line(f"{test}: {name}: {value}")
