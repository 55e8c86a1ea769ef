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
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from tests.e2e.conftest import (
    E2E_PASSWORD,
    RELAXED_IP_LIMITS,
    ServerProcess,
    connect_authenticated,
    create_user,
    obtain_tokens,
    requires_postgres,
    requires_redis_and_postgres,
)

pytestmark = [pytest.mark.e2e, requires_postgres, pytest.mark.django_db(transaction=True)]

logger = logging.getLogger(__name__)

FLOOD_CLIENTS = 16
PING_INTERVAL_S = 0.025
WARMUP_S = 1.0
QUIET_S = 4.0
FLOOD_S = 8.0
# Seconds a flood request may take: the wait for a hashing slot plus one hash, with room.
FLOOD_REQUEST_TIMEOUT_S = 30.0
# On a shared 2-core machine a quiet p99 of a few milliseconds doubles from scheduler noise
# alone (another process's burst, a page fault, the test's own flood thread): 2x of 3 ms says
# nothing about starvation. The issue measured p99 going from 6.6 ms to over 10 s, so an
# absolute allowance of 20 ms on top of the quiet value keeps the test sensitive to what it
# guards against (hundreds of milliseconds and more) without failing on noise.
ABSOLUTE_ALLOWANCE_S = 0.020

_addresses = itertools.count(1)


def next_address() -> str:
    """A distinct client address from 10.0.0.0/8 for every call."""
    n = next(_addresses)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


async def post_login(
    port: int, username: str, password: str, forwarded_for: str
) -> tuple[int, dict[str, str], Any]:
    """One ``POST /api/auth/token/`` on its own connection: (status, headers, JSON body)."""
    body = json.dumps({"username": username, "password": password}).encode()
    head = (
        f"POST /api/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-Forwarded-For: {forwarded_for}\r\nConnection: close\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        raw = await reader.read()
    finally:
        writer.close()
    header_block, _, payload = raw.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        payload = _unchunk(payload)
    try:
        decoded = json.loads(payload) if payload else None
    except ValueError:
        decoded = payload.decode(errors="replace")
    return status, headers, decoded


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


class Flood:
    """Concurrent wrong-password logins from distinct addresses, in a thread of its own (its
    own event loop), so the pinger's loop measures the server and not the flood's clients."""

    def __init__(self, port: int, clients: int) -> None:
        self.port = port
        self.clients = clients
        self.statuses: Counter[int] = Counter()
        self.codes: Counter[str] = Counter()
        self.retry_after: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="login-flood", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(FLOOD_REQUEST_TIMEOUT_S + 5)
        assert not self._thread.is_alive(), "the flood's requests did not finish"

    def _run(self) -> None:
        asyncio.run(self._flood())

    async def _flood(self) -> None:
        await asyncio.gather(*(self._client() for _ in range(self.clients)))

    async def _client(self) -> None:
        while not self._stop.is_set():
            try:
                async with asyncio.timeout(FLOOD_REQUEST_TIMEOUT_S):
                    status, headers, body = await post_login(
                        self.port, f"flood_{uuid.uuid4().hex[:12]}", "wrong", next_address()
                    )
            except (OSError, TimeoutError) as exc:
                self.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.05)
                continue
            self.statuses[status] += 1
            if isinstance(body, dict) and "code" in body:
                self.codes[str(body["code"])] += 1
            if "retry-after" in headers:
                self.retry_after[headers["retry-after"]] += 1


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
        quiet = await ping_rtts(ws, QUIET_S, acks)
        flood = Flood(server.port, FLOOD_CLIENTS)
        flood.start()
        try:
            flooded = await ping_rtts(ws, FLOOD_S, acks)
        finally:
            await asyncio.to_thread(flood.stop)

    quiet_p99, flood_p99 = p99(quiet), p99(flooded)
    allowed = max(2 * quiet_p99, quiet_p99 + ABSOLUTE_ALLOWANCE_S)
    summary = (
        f"{kind}: ping p99 quiet {quiet_p99 * 1000:.1f} ms ({len(quiet)} pings), during the "
        f"flood {flood_p99 * 1000:.1f} ms ({len(flooded)} pings), allowed "
        f"{allowed * 1000:.1f} ms; flood answers {dict(flood.statuses)}, codes "
        f"{dict(flood.codes)}, Retry-After {dict(flood.retry_after)}, errors {dict(flood.errors)}"
    )
    logger.info(summary)
    assert flood_p99 <= allowed, summary
    # The flood reached the password check (401s) and was held back by the bound (429s).
    assert flood.statuses[401] > 0, summary
    assert flood.statuses[429] > 0 and flood.codes["login_busy"] > 0, summary
    assert set(flood.statuses) <= {401, 429}, summary
