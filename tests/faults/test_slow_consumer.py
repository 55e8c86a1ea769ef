"""A client that stops reading in a busy zone is closed 4008, alone (issue #13).

A zone carries 16 KB room events at 100/s (1.6 MB/s per member). One member stops reading: on
daphne and on uvicorn alike the server closes it with 4008 ``SLOW_CONSUMER`` soon after it is
``AETURNIS_OUTBOUND_BUFFER_BYTES`` behind (the kernel's socket buffers fill first), its memory
grows by no more than about that bound, and the other member of the zone, on the same process,
keeps receiving every event in order at its usual latency. When the slow client reads again
(after ~12 s), it finds the close frame 4008 ``SLOW_CONSUMER``.

The load is published into the zone's room from the test process through the project's own
sync broadcast (``to_room_sync``, as operator tools do), so it is independent of the rate
limits and size rules of client events.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import threading
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import FRAME_TIMEOUT_S, ServerProcess, requires_redis_and_postgres
from tests.e2e.players import create_player
from tests.faults.conftest import rate_limits_env, requires_fault_env
from tests.faults.play import access_token, select
from tests.faults.support import (
    assert_clean_logs,
    describe_ms,
    figure,
    latency_bound,
    metric,
    open_client,
    percentile,
    rss_bytes,
    scrape_metrics,
    warning_lines,
)

pytestmark = [
    pytest.mark.faults,
    pytest.mark.e2e,
    pytest.mark.redis,
    requires_redis_and_postgres,
    requires_fault_env,
    pytest.mark.django_db(transaction=True),
]

ZONE_ROOM = "zone:starting_village"
EVENT_BYTES = 16 * 1024  # issue #13: "16 KB messages, 100/s"
RATE_PER_S = 100
BUFFER_BYTES = 1024 * 1024  # AETURNIS_OUTBOUND_BUFFER_BYTES, the default, set explicitly
WARM_UP_S = 2.0
STUCK_S = 12.0  # issue #13: read again after ~12 s
# The contract allows 10 s after the client is BUFFER_BYTES behind; before that the kernel's
# buffers fill (server send buffer ≤ tcp_wmem max, 4 MiB here; the client's receive buffer is
# pinned to 16 KiB), i.e. ~3 s at 1.6 MB/s. Closing within 10 s of the stop is within both.
CLOSE_WITHIN_S = 10.0
# Memory the server may grow by while the client is stuck: the bound itself plus slack for
# what is not the slow client's backlog (the interpreter's allocator keeps freed 16 KB
# frames around; the other client's frames in flight). Without the bound the process would
# hold the whole stuck period's traffic: 12 s x 1.6 MB/s ≈ 19 MB.
RSS_SLACK_BYTES = 6 * 1024 * 1024
SLOW_RCVBUF = 16 * 1024
# After its close frame the server waits AETURNIS_CLOSE_GRACE_S (default 10 s) for the client
# before it drops the socket. The close comes ~3 s after the client stopped, so with the
# default a client that reads again at 12 s has ~1 s to drain megabytes of backlog before the
# drop, whose RST discards what it had not read (it sees 1006, never the 4008). Long enough
# here that reading again at STUCK_S always finds the close frame.
CLOSE_GRACE_S = 30


class RoomLoad:
    """Publishes ``RATE_PER_S`` events of ``EVENT_BYTES`` into a room from a thread."""

    def __init__(self, room: str) -> None:
        self.room = room
        self.sent = 0
        self._stop = threading.Event()
        # Incompressible filler: a frame on the wire is as big as it says even with deflate.
        self._pad = base64.b64encode(os.urandom(EVENT_BYTES * 3 // 4))[: EVENT_BYTES - 100]
        self._thread = threading.Thread(target=self._run, name="room-load", daemon=True)

    def start(self) -> RoomLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        from realtime.fanout.broadcast import to_room_sync

        pad = self._pad.decode()
        started = time.monotonic()
        while not self._stop.is_set():
            due = started + self.sent / RATE_PER_S
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
                continue
            to_room_sync(
                self.room, "test:load", {"seq": self.sent, "sentAt": time.monotonic(), "pad": pad}
            )
            self.sent += 1


async def slow_client(server: ServerProcess, token: str) -> ClientConnection:
    """A client whose receive buffer is small, so not reading backs up to the server fast."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    return await connect(
        f"{server.ws_url}/ws/game/?token={token}",
        sock=sock,
        max_queue=4,  # the library stops reading from the socket after 4 unread messages
        compression=None,
        ping_interval=None,
        open_timeout=FRAME_TIMEOUT_S,
        close_timeout=FRAME_TIMEOUT_S,
    )


async def slow_request(ws: ClientConnection, event: str, data: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"event": event, "data": data, "ack": 1}))
    async with asyncio.timeout(FRAME_TIMEOUT_S):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("ack") == 1:
                answer: dict[str, Any] = frame["data"]
                return answer


async def read_until_closed(ws: ClientConnection, timeout: float) -> tuple[int, str, int]:
    """Read everything left; (close code, reason, frames read). 1006 when no close frame."""
    frames = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
                frames += 1
    except ConnectionClosed as exc:
        if exc.rcvd is None:
            return 1006, "", frames
        return exc.rcvd.code, exc.rcvd.reason, frames
    except TimeoutError:
        pass
    pytest.fail(f"still open after {timeout} s ({frames} frames read)", pytrace=False)


def load_latencies(
    received: list[Any], since: float, until: float
) -> tuple[list[float], list[int]]:
    """(delivery latencies, seqs) of the load events received between ``since`` and ``until``."""
    latencies, seqs = [], []
    for item in received:
        frame = item.frame
        if frame.get("event") == "test:load" and since <= item.at <= until:
            latencies.append(item.at - frame["data"]["sentAt"])
            seqs.append(frame["data"]["seq"])
    return latencies, seqs


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_client_that_stops_reading_is_closed_4008_and_costs_no_one_else(
    server_factory: Any, kind: str
) -> None:
    (server,) = server_factory(
        kind,
        extra_env={
            "AETURNIS_OUTBOUND_BUFFER_BYTES": str(BUFFER_BYTES),
            "AETURNIS_CLOSE_GRACE_S": str(CLOSE_GRACE_S),
            "AETURNIS_RATE_LIMITS": rate_limits_env(),
        },
    )
    slow_player, other_player = await create_player(), await create_player()
    ws = await slow_client(server, await access_token(slow_player.user_id))
    load: RoomLoad | None = None
    try:
        first = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S))
        assert first["event"] == "sync:initial", first
        selected = await slow_request(ws, "character:select", {"characterId": slow_player.cid})
        assert selected["ok"] is True, selected
        async with open_client(
            server, await access_token(other_player.user_id), "other", compression=None
        ) as other:
            await select(other, other_player)

            # Warm-up: both read. The baseline of the other client's latency and of memory.
            async def drain() -> None:
                with contextlib.suppress(ConnectionClosed):
                    async for _ in ws:
                        pass

            reader = asyncio.create_task(drain())
            load = RoomLoad(ZONE_ROOM).start()
            warm_started = time.monotonic()
            await asyncio.sleep(WARM_UP_S)
            base_latency, _ = load_latencies(other.received, warm_started + 0.5, time.monotonic())
            assert len(base_latency) >= RATE_PER_S, describe_ms(base_latency)
            base_rss = rss_bytes(server.pid)

            # The slow client stops reading.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            stopped = time.monotonic()
            peak_rss = base_rss
            closed_after: float | None = None
            while time.monotonic() - stopped < STUCK_S:
                await asyncio.sleep(0.25)
                peak_rss = max(peak_rss, rss_bytes(server.pid))
                if closed_after is None:
                    samples = await scrape_metrics(server)
                    if metric(samples, "aeturnis_slow_consumer_closes_total"):
                        closed_after = time.monotonic() - stopped
            stuck_latency, stuck_seqs = load_latencies(other.received, stopped, time.monotonic())
            load.stop()

            # It reads again: what was in flight, then the close frame.
            code, reason, _ = await read_until_closed(ws, FRAME_TIMEOUT_S)
            assert (code, reason) == (4008, "SLOW_CONSUMER"), (code, reason, closed_after)
            assert closed_after is not None and closed_after <= CLOSE_WITHIN_S, closed_after
            growth = peak_rss - base_rss
            assert growth <= BUFFER_BYTES + RSS_SLACK_BYTES, f"RSS grew {growth / 2**20:.1f} MiB"
            figure(
                f"a client stops reading ({server.name})",
                f"closed 4008 SLOW_CONSUMER {closed_after:.1f} s after it stopped, server RSS "
                f"+{growth / 2**20:.1f} MiB; the other member's latency p50 "
                f"{percentile(base_latency, 50) * 1000:.1f} ms before, "
                f"{percentile(stuck_latency, 50) * 1000:.1f} ms meanwhile, nothing lost",
            )

            # The other client: every event, in order, at its usual latency; still connected.
            _, all_seqs = load_latencies(other.received, 0, time.monotonic())
            assert all_seqs == list(range(all_seqs[0], all_seqs[0] + len(all_seqs))), "loss"
            assert len(stuck_seqs) >= 0.9 * RATE_PER_S * STUCK_S, len(stuck_seqs)
            bound = latency_bound(percentile(base_latency, 50))
            assert percentile(stuck_latency, 50) <= bound, (
                describe_ms(base_latency),
                describe_ms(stuck_latency),
            )
            assert other.open, other.describe_close()
            pong = await other.ping()
            assert pong.ok, pong
    finally:
        if load is not None:
            load.stop()
        await ws.close()

    samples = await scrape_metrics(server)
    assert metric(samples, "aeturnis_slow_consumer_closes_total") == 1, "exactly one close"
    assert len(warning_lines(server, mentioning="slow consumer")) == 1, server.log_tail()
    assert_clean_logs(server)
