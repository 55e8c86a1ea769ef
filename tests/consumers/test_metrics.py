"""``/metrics`` (PROTOCOL.md §7): what the realtime layer counts, the bearer token, totals over
several processes; and the log context each connection binds.

Counters are process-global, so every check compares values scraped before and after.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from channels.db import database_sync_to_async
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from realtime.connection.outbound import AsgiOutbound
from realtime.core import metrics
from realtime.core.logs import JsonFormatter
from realtime.handlers import dispatch, system
from realtime.protocol import payloads
from realtime.protocol.frames import Frame
from realtime.transport.app import app_runtime
from tests.conftest import WS_TIMEOUT, access_for, connect, connect_as

ROOT = Path(__file__).resolve().parents[2]
db = pytest.mark.django_db(transaction=True)


class Scrape:
    """One parsed ``/metrics`` answer."""

    def __init__(self, text: str) -> None:
        self.values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.values[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def __call__(self, name: str, **labels: str) -> float:
        return self.values.get((name, frozenset(labels.items())), 0.0)


async def scrape(async_client: Any) -> Scrape:
    response = await async_client.get("/metrics")
    assert response.status_code == 200
    return Scrape(response.content.decode())


async def sio_connected(user: Any) -> Any:
    """A Socket.IO connection through CONNECT and ``sync:initial``."""
    comm = await connect("/socket.io/?EIO=4&transport=websocket")
    assert (await comm.receive_from(timeout=WS_TIMEOUT)).startswith("0")
    await comm.send_to(text_data="40" + json.dumps({"token": access_for(user)}))
    assert (await comm.receive_from(timeout=WS_TIMEOUT)).startswith("40{")
    assert (await comm.receive_from(timeout=WS_TIMEOUT)).startswith('42["sync:initial"')
    return comm


def delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after(name, **labels) - before(name, **labels)


@pytest.fixture
async def user(make_user: Any) -> Any:
    return await database_sync_to_async(make_user)()


# --- what is counted -------------------------------------------------------------------------


@db
async def test_requests_replies_errors_and_rate_limits_are_counted(
    async_client: Any, user: Any
) -> None:
    with override_settings(AETURNIS_RATE_LIMITS={"ping": "1/60"}):
        before = await scrape(async_client)
        comm, _ = await connect_as(user)
        opened = await scrape(async_client)
        await comm.send_json_to({"event": "ping", "data": {}, "ack": 1})
        assert (await comm.receive_json_from(timeout=WS_TIMEOUT))["data"]["ok"] is True
        await comm.send_json_to({"event": "no:such_event", "data": {}})
        frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
        assert frame["data"]["code"] == "UNKNOWN_EVENT"
        await comm.send_json_to({"event": "ping", "data": {}})
        frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
        assert frame["data"]["code"] == "RATE_LIMITED"
        await comm.send_to(text_data="not json")
        frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
        assert frame["data"]["code"] == "BAD_FRAME"
        after = await scrape(async_client)
        await comm.disconnect()
        closed = await scrape(async_client)

    assert delta(before, opened, "aeturnis_connections", transport="native") == 1
    assert delta(before, closed, "aeturnis_connections", transport="native") == 0
    assert delta(opened, after, "aeturnis_messages_in_total", event="ping") == 2
    assert delta(opened, after, "aeturnis_messages_in_total", event="unknown") == 1
    assert after("aeturnis_messages_in_total", event="no:such_event") == 0
    assert delta(opened, after, "aeturnis_rate_limited_total", event="ping") == 1
    assert delta(opened, after, "aeturnis_errors_total", code="UNKNOWN_EVENT") == 1
    assert delta(opened, after, "aeturnis_errors_total", code="RATE_LIMITED") == 1
    assert delta(opened, after, "aeturnis_errors_total", code="BAD_FRAME") == 1
    assert delta(opened, after, "aeturnis_messages_out_total", kind="ack") == 1
    assert delta(opened, after, "aeturnis_messages_out_total", kind="event") == 3
    assert delta(before, opened, "aeturnis_messages_out_total", kind="event") >= 1  # sync:initial


@db
async def test_room_fan_out_counts_each_delivery_and_times_each_broadcast(
    async_client: Any, user: Any
) -> None:
    first, _ = await connect_as(user)
    second, _ = await connect_as(user)
    before = await scrape(async_client)
    await (await app_runtime()).broadcast.to_user(user.pk, "test:hello", {"n": 1})
    for comm in (first, second):
        frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
        assert frame["event"] == "test:hello"
    after = await scrape(async_client)
    assert delta(before, after, "aeturnis_messages_out_total", kind="room") == 2
    assert delta(before, after, "aeturnis_broadcast_fanout_seconds_count") == 1
    assert delta(before, after, "aeturnis_broadcast_fanout_seconds_sum") > 0
    await first.disconnect()
    await second.disconnect()


@db
async def test_socketio_connections_are_counted_by_transport(async_client: Any, user: Any) -> None:
    before = await scrape(async_client)
    comm = await sio_connected(user)
    opened = await scrape(async_client)
    await comm.disconnect()
    closed = await scrape(async_client)
    assert delta(before, opened, "aeturnis_connections", transport="socketio") == 1
    assert delta(before, opened, "aeturnis_connections", transport="native") == 0
    assert delta(before, closed, "aeturnis_connections", transport="socketio") == 0


@db
async def test_refused_handshakes_are_counted_by_code(async_client: Any) -> None:
    before = await scrape(async_client)
    comm = await connect("/ws/game/?token=not-a-token")
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert frame["event"] == "connect_error" and frame["data"]["code"] == "TOKEN_INVALID"
    await comm.wait(timeout=WS_TIMEOUT)
    after = await scrape(async_client)
    assert delta(before, after, "aeturnis_errors_total", code="TOKEN_INVALID") == 1
    assert delta(before, after, "aeturnis_connections", transport="native") == 0


async def test_an_outbound_queue_overflow_is_counted() -> None:
    gate = asyncio.Event()

    async def blocked_send(message: dict[str, Any]) -> None:
        await gate.wait()

    out = AsgiOutbound(
        blocked_send,
        limit=1,
        limit_bytes=10**6,
        on_overflow=lambda: None,
        on_error=lambda exc: None,
    )
    before = Scrape(metrics.render().decode())
    out.push(Frame("1"))  # in progress, blocked
    out.push(Frame("2"))  # queued
    out.push(Frame("3"))  # over the limit
    after = Scrape(metrics.render().decode())
    out.kill()
    assert delta(before, after, "aeturnis_outbound_overflows_total") == 1


# --- the endpoint ----------------------------------------------------------------------------


def test_metrics_are_anonymous_prometheus_text_without_a_token_setting(
    client: Any, settings: Any
) -> None:
    settings.AETURNIS_METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    for name, kind in [
        ("aeturnis_connections", "gauge"),
        ("aeturnis_messages_in_total", "counter"),
        ("aeturnis_messages_out_total", "counter"),
        ("aeturnis_broadcast_fanout_seconds", "histogram"),
        ("aeturnis_rate_limited_total", "counter"),
        ("aeturnis_errors_total", "counter"),
        ("aeturnis_outbound_overflows_total", "counter"),
    ]:
        assert f"# TYPE {name} {kind}\n" in text
    # Every routed event has its own series from the start; nothing else does.
    scraped = Scrape(text)
    events = {
        dict(labels)["event"]
        for name, labels in scraped.values
        if name == "aeturnis_messages_in_total"
    }
    assert events == {*dispatch.ROUTES, "unknown"}


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Bearer ", "Basic czNjcmV0LW1ldHJpY3M=", "s3cret-metrics"],
)
def test_with_a_token_setting_metrics_need_that_bearer_token(
    client: Any, settings: Any, authorization: str | None
) -> None:
    settings.AETURNIS_METRICS_TOKEN = "s3cret-metrics"
    headers = {"authorization": authorization} if authorization is not None else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"aeturnis_" not in response.content


def test_with_a_token_setting_the_right_bearer_token_is_let_in(client: Any, settings: Any) -> None:
    settings.AETURNIS_METRICS_TOKEN = "s3cret-metrics"
    response = client.get("/metrics", headers={"authorization": "Bearer s3cret-metrics"})
    assert response.status_code == 200
    assert b"# TYPE aeturnis_messages_in_total counter" in response.content


# --- several processes -----------------------------------------------------------------------

WORKER = """
import sys, django
django.setup()
from realtime.core import metrics
if sys.argv[1] == "work":
    metrics.OUT_EVENT.inc(3)
    metrics.CONNECTIONS.labels("native").inc()
    metrics.count_error("NOT_YOUR_TURN")
    print("ready", flush=True)
    sys.stdin.read()  # stay alive until the test closes stdin
else:
    sys.stdout.write(metrics.render().decode())
"""


def test_multiprocess_mode_reports_totals_over_every_process(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "aeturnis.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }

    def run(mode: str, **kwargs: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", WORKER, mode], cwd=ROOT, env=env, text=True, **kwargs
        )

    def collect() -> Scrape:
        proc = run("collect", stdout=subprocess.PIPE)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        return Scrape(out)

    workers = [run("work", stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(2)]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        live = collect()
    finally:
        for worker in workers:
            worker.communicate(timeout=60)
    assert live("aeturnis_messages_out_total", kind="event") == 6
    assert live("aeturnis_errors_total", code="NOT_YOUR_TURN") == 2
    assert live("aeturnis_connections", transport="native") == 2
    ended = collect()
    # Counters keep what exited processes counted; their connections are gone.
    assert ended("aeturnis_messages_out_total", kind="event") == 6
    assert ended("aeturnis_connections", transport="native") == 0


# --- log context -----------------------------------------------------------------------------


@db
async def test_logs_while_handling_a_connection_carry_its_socket_and_user_ids(
    user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.metrics.noisy")
    log.addHandler(handler)

    async def noisy_ping(session: Any, payload: Any) -> Any:
        log.warning("ping from %s", json.dumps({"token": "s3cr3t-value"}))
        return await system.ping(session, payload)

    monkeypatch.setitem(dispatch.ROUTES, "ping", dispatch.Route(payloads.PING, noisy_ping, None))
    try:
        comm, initial = await connect_as(user)
        await comm.send_json_to({"event": "ping", "data": {}, "ack": 1})
        assert (await comm.receive_json_from(timeout=WS_TIMEOUT))["ack"] == 1
        await comm.disconnect()
    finally:
        log.removeHandler(handler)
    assert len(lines) == 1
    entry = orjson.loads(lines[0])
    assert entry["socket_id"] == initial["socketId"]
    assert entry["user_id"] == user.pk
    assert "s3cr3t-value" not in lines[0]
