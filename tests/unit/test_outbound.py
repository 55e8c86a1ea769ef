"""Per-connection delivery never waits on the socket, keeps order, and sheds laggards."""

from __future__ import annotations

import asyncio
from typing import Any

from realtime.connection.outbound import Outbound


class Socket:
    """An ASGI send that completes at once, or blocks until released."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.gate: asyncio.Event | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.sent.append(message["n"])


def make(socket: Socket, limit: int = 3) -> tuple[Outbound, list[str]]:
    events: list[str] = []
    out = Outbound(
        socket.send,
        limit=limit,
        on_overflow=lambda: events.append("overflow"),
        on_error=lambda exc: events.append(f"error:{exc}"),
    )
    return out, events


async def test_a_send_that_completes_at_once_needs_no_task() -> None:
    socket = Socket()
    out, _ = make(socket)
    out.push({"n": 1})
    assert socket.sent == [1]
    assert await out.flushed(0.1)


async def test_a_blocked_send_queues_later_frames_in_order() -> None:
    socket = Socket()
    socket.gate = asyncio.Event()
    out, events = make(socket)
    for n in range(1, 4):
        out.push({"n": n})  # returns at once although the socket is blocked
    assert socket.sent == [] and out.backlog == 2
    socket.gate.set()
    assert await out.flushed(1)
    assert socket.sent == [1, 2, 3] and events == []


async def test_overflow_is_reported_instead_of_growing() -> None:
    socket = Socket()
    socket.gate = asyncio.Event()
    out, events = make(socket, limit=2)
    for n in range(5):
        out.push({"n": n})
    assert out.backlog == 2
    assert events == ["overflow", "overflow"]
    out.kill()


async def test_push_last_drops_the_backlog_and_seals() -> None:
    socket = Socket()
    socket.gate = asyncio.Event()
    out, _ = make(socket)
    for n in range(3):
        out.push({"n": n})
    out.push_last({"n": "close"}, drop_queued=True)
    out.push({"n": "ignored"})
    socket.gate.set()
    assert await out.flushed(1)
    assert socket.sent == [0, "close"]


async def test_a_failing_send_reports_and_stops() -> None:
    async def broken(message: dict[str, Any]) -> None:
        raise OSError("gone")

    events: list[str] = []
    out = Outbound(broken, limit=2, on_overflow=lambda: None, on_error=lambda e: events.append("x"))
    out.push({"n": 1})
    out.push({"n": 2})
    assert events == ["x"] and out.dead


async def test_one_blocked_socket_does_not_delay_others() -> None:
    stuck, fine = Socket(), Socket()
    stuck.gate = asyncio.Event()
    out_stuck, _ = make(stuck, limit=1000)
    out_fine, _ = make(fine)
    for n in range(100):
        out_stuck.push({"n": n})
        out_fine.push({"n": n})
    assert fine.sent == list(range(100))
    out_stuck.kill()
