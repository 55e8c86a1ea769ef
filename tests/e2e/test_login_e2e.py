"""Logins over HTTP against real server processes (issues #13, #19 item 2).

* Failed-login limits are shared by every process (Redis): failures on one process refuse
  logins on another, with 429 and ``Retry-After``.
* A login flood must not starve the game: a native WebSocket client pings a server while many
  concurrent clients post wrong passwords to ``POST /api/auth/token/``, each from its own
  address (``X-Forwarded-For`` from a trusted proxy) and for its own username, so that neither
  failure limit stops them before the password hash: only the per-process bound on concurrent
  password checks (``AETURNIS_PASSWORD_HASH_CONCURRENCY``) stands between the flood and the CPU.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.client import ClientConnection

from tests.e2e.conftest import (
    E2E_PASSWORD,
    RELAXED_IP_LIMITS,
    REPO_ROOT,
    ServerProcess,
    connect_authenticated,
    create_user,
    obtain_tokens,
    requires_postgres,
    requires_redis_and_postgres,
)
from tests.e2e.login_flood import REQUEST_TIMEOUT_S, next_address, post_login

pytestmark = [pytest.mark.e2e, requires_postgres, pytest.mark.django_db(transaction=True)]

logger = logging.getLogger(__name__)

FLOOD_CLIENTS = 16
PING_INTERVAL_S = 0.025
WARMUP_S = 1.0
QUIET_S = 4.0
FLOOD_S = 8.0
# On a shared 2-core machine a quiet p99 of a few milliseconds doubles from scheduler noise
# alone (another process's burst, a page fault, the flood's own client process): 2x of 3 ms says
# nothing about starvation. The issue measured p99 going from 6.6 ms to over 10 s, and without
# the bound (or with 16 password checks at once) this test measured 55-140 ms, so an absolute
# allowance of 20 ms on top of the quiet value keeps it sensitive to what it guards against
# without failing on noise.
ABSOLUTE_ALLOWANCE_S = 0.020
# The quiet value is measured before and after the flood, and the larger taken: when other
# work on the machine starts or stops during the test, the baseline sees it as the flood does.
# Other work can still land on the flood's seconds only: a measurement that fails is repeated,
# up to three times in all. Noise passes one of three; starvation fails all three (it did, every
# time, with AETURNIS_PASSWORD_HASH_CONCURRENCY=16).
MEASUREMENTS = 3


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


class Flood:
    """``tests/e2e/login_flood.py`` in a process of its own, like a real attacker."""

    def __init__(self, port: int, clients: int, seconds: float) -> None:
        self.args = [str(port), "--clients", str(clients), "--seconds", str(seconds)]
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.e2e.login_flood",
            *self.args,
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def result(self) -> dict[str, dict[str, int]]:
        """What the flood saw, once its last requests are answered."""
        assert self.process is not None
        async with asyncio.timeout(REQUEST_TIMEOUT_S + 10):
            out, err = await self.process.communicate()
        assert self.process.returncode == 0, err.decode(errors="replace")
        result: dict[str, dict[str, int]] = json.loads(out)
        return result

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()


@pytest.mark.redis
@requires_redis_and_postgres
async def test_failed_login_limits_are_shared_by_every_process(
    server_factory: Callable[..., list[ServerProcess]],
) -> None:
    # The e2e default relaxes per-IP limits for tests sharing 127.0.0.1; these are the defaults
    # (login_failures_ip 10/300, login_failures_user 5/300).
    limits = {k: v for k, v in json.loads(RELAXED_IP_LIMITS).items() if not k.startswith("login_")}
    daphne, uvicorn = server_factory(
        "daphne",
        "uvicorn",
        extra_env={"TRUSTED_PROXIES": "127.0.0.1", "AETURNIS_RATE_LIMITS": json.dumps(limits)},
    )
    servers = [daphne, uvicorn]
    guessed, other = await create_user(), await create_user()

    for n in range(5):  # per username, each from a new address, alternating processes
        status, _, _ = await post_login(
            servers[n % 2].port, guessed.username, "wrong", next_address()
        )
        assert status == 401
    for server in servers:
        status, headers, body = await post_login(
            server.port, guessed.username, E2E_PASSWORD, next_address()
        )
        assert status == 429 and body["code"] == "login_throttled", body
        assert 1 <= int(headers["retry-after"]) <= 300 and body["retryAfter"] == int(
            headers["retry-after"]
        )

    address = next_address()
    for n in range(10):  # per address, each for a new username, alternating processes
        status, _, _ = await post_login(servers[n % 2].port, f"nobody_{n}", "wrong", address)
        assert status == 401
    status, _, body = await post_login(uvicorn.port, other.username, E2E_PASSWORD, address)
    assert status == 429 and body["code"] == "login_throttled", body
    status, _, body = await post_login(daphne.port, other.username, E2E_PASSWORD, next_address())
    assert status == 200 and {"access", "refresh"} <= set(body)


async def ping_rtts(ws: ClientConnection, seconds: float, acks: Callable[[], int]) -> list[float]:
    """Round-trip times of ``ping`` requests sent one after another for ``seconds``."""
    rtts: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ack = acks()
        started = time.perf_counter()
        await ws.send(json.dumps({"event": "ping", "data": {}, "ack": ack}))
        async with asyncio.timeout(60):
            while json.loads(await ws.recv()).get("ack") != ack:
                pass
        rtts.append(time.perf_counter() - started)
        await asyncio.sleep(PING_INTERVAL_S)
    return rtts


@dataclass(frozen=True)
class Measurement:
    quiet_before: list[float] = field(repr=False)
    flooded: list[float] = field(repr=False)
    quiet_after: list[float] = field(repr=False)
    seen: dict[str, dict[str, int]]

    @property
    def quiet_p99(self) -> float:
        return max(p99(self.quiet_before), p99(self.quiet_after))

    @property
    def allowed(self) -> float:
        return max(2 * self.quiet_p99, self.quiet_p99 + ABSOLUTE_ALLOWANCE_S)

    @property
    def passed(self) -> bool:
        return p99(self.flooded) <= self.allowed

    def summary(self) -> str:
        return (
            f"ping p99 quiet {p99(self.quiet_before) * 1000:.1f} ms before and "
            f"{p99(self.quiet_after) * 1000:.1f} ms after ({len(self.quiet_before)}, "
            f"{len(self.quiet_after)} pings), during the flood "
            f"{p99(self.flooded) * 1000:.1f} ms ({len(self.flooded)} pings), allowed "
            f"{self.allowed * 1000:.1f} ms; the flood saw {self.seen}"
        )


async def measure(
    server: ServerProcess, ws: ClientConnection, acks: Callable[[], int]
) -> Measurement:
    quiet_before = await ping_rtts(ws, QUIET_S, acks)
    flood = Flood(server.port, FLOOD_CLIENTS, FLOOD_S)
    await flood.start()
    try:
        flooded = await ping_rtts(ws, FLOOD_S, acks)
        seen = await flood.result()
    finally:
        flood.kill()
    quiet_after = await ping_rtts(ws, QUIET_S, acks)
    return Measurement(quiet_before, flooded, quiet_after, seen)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_login_flood_leaves_ping_latency_within_twice_its_quiet_value(
    server_factory: Callable[..., list[ServerProcess]], kind: str
) -> None:
    limits = json.loads(RELAXED_IP_LIMITS) | {"ping": "1000000/60"}
    (server,) = server_factory(
        kind,
        extra_env={"TRUSTED_PROXIES": "127.0.0.1", "AETURNIS_RATE_LIMITS": json.dumps(limits)},
    )
    player = await create_user()
    token, _ = await obtain_tokens(server, player.username)
    acks = itertools.count(1).__next__

    async with connect_authenticated(server, token) as (ws, _):
        await ping_rtts(ws, WARMUP_S, acks)
        for attempt in range(1, MEASUREMENTS + 1):
            result = await measure(server, ws, acks)
            logger.info("%s, measurement %d: %s", kind, attempt, result.summary())
            if result.passed:
                break

    summary = f"{kind}: {result.summary()}"
    assert result.passed, summary
    # The flood reached the password check (401s) and was held back by the bound (429s).
    statuses, codes = result.seen["statuses"], result.seen["codes"]
    assert statuses.get("401", 0) > 0, summary
    assert statuses.get("429", 0) > 0 and codes.get("login_busy", 0) > 0, summary
    assert set(statuses) <= {"401", "429"} and not result.seen["errors"], summary
