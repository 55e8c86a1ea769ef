"""Per-connection delivery never waits on the socket, keeps order, and sheds laggards.

Both ways to a socket are covered: ``AsgiOutbound`` (ASGI ``send()``, any server) and
``SocketOutbound`` (frames written straight to a server's socket, bounded in bytes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from realtime.connection.outbound import AsgiOutbound, SocketOutbound
from realtime.protocol.frames import Frame, ws_close_frame, ws_text_frame


def frame(n: Any) -> Frame:
    return Frame(str(n))


class Socket:
    """An ASGI send that completes at once, or blocks until released."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.gate: asyncio.Event | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.sent.append(message.get("text", message["type"]))


def make(
    socket: Socket, limit: int = 3, limit_bytes: int = 10**6
) -> tuple[AsgiOutbound, list[str]]:
    events: list[str] = []
    out = AsgiOutbound(
        socket.send,
        limit=limit,
        limit_bytes=limit_bytes,
        on_overflow=lambda: events.append("overflow"),
        on_error=lambda exc: events.append(f"error:{exc}"),
    )
    return out, events


async def test_a_send_that_completes_at_once_needs_no_task() -> None:
    socket = Socket()
    out, _ = make(socket)
    out.push(frame(1))
    assert socket.sent == ["1"]
    assert await out.flushed(0.1)


async def test_a_blocked_send_queues_later_frames_in_order() -> None:
    socket = Socket()
    socket.gate = asyncio.Event()
    out, events = make(socket)
    for n in range(1, 4):
        out.push(frame(n))  # returns at once although the socket is blocked
    assert socket.sent == [] and out.backlog == 2
    socket.gate.set()
    assert await out.flushed(1)
    assert socket.sent == ["1", "2", "3"] and events == []


async def test_overflow_is_reported_instead_of_growing() -> None:
    socket = Socket()
    socket.gate = asyncio.Event()
    out, events = make(socket, limit=2)
    for n in range(5):
        out.push(frame(n))
    assert out.backlog == 2
    assert events == ["overflow", "overflow"]
    out.kill()


async def test_overflow_by_bytes_is_reported_too() -> None:
    socket = Socket()
    socket.gate = asyncio.Event()
    out, events = make(socket, limit=1000, limit_bytes=10)
    out.push(frame("first"))  # in flight
    out.push(frame("x" * 8))  # queued: 8 bytes
    out.push(frame("y" * 8))  # would be 16 > 10
    assert out.backlog == 1 and events == ["overflow"]
    out.kill()


async def test_close_drops_the_backlog_and_seals() -> None:
    socket = Socket()
    socket.gate = asyncio.Event()
    out, _ = make(socket)
    for n in range(3):
        out.push(frame(n))
    out.close(4008, "SLOW_CONSUMER", drop_queued=True)
    out.push(frame("ignored"))
    socket.gate.set()
    assert await out.flushed(1)
    assert socket.sent == ["0", "websocket.close"]


async def test_a_failing_send_reports_and_stops() -> None:
    async def broken(message: dict[str, Any]) -> None:
        raise OSError("gone")

    events: list[str] = []
    out = AsgiOutbound(
        broken,
        limit=2,
        limit_bytes=100,
        on_overflow=lambda: None,
        on_error=lambda e: events.append("x"),
    )
    out.push(frame(1))
    out.push(frame(2))
    assert events == ["x"] and out.dead


async def test_one_blocked_socket_does_not_delay_others() -> None:
    stuck, fine = Socket(), Socket()
    stuck.gate = asyncio.Event()
    out_stuck, _ = make(stuck, limit=1000)
    out_fine, _ = make(fine)
    for n in range(100):
        out_stuck.push(frame(n))
        out_fine.push(frame(n))
    assert fine.sent == [str(n) for n in range(100)]
    out_stuck.kill()


# --- frames written straight to a socket ------------------------------------------------------


class RawSocket:
    """A server socket as ``SocketOutbound`` sees it: takes bytes until it is congested."""

    def __init__(self, high_water: int = 100) -> None:
        self.written = bytearray()
        self.pending = 0  # bytes the "kernel" has not taken
        self.high_water = high_water
        self.closed_with: tuple[int, str] | None = None
        self.drain: Callable[[], None] | None = None
        self.fail = False

    def writable(self) -> bool:
        return self.pending <= self.high_water

    def buffered(self) -> int:
        return self.pending

    def write(self, data: bytes) -> None:
        if self.fail:
            raise OSError("broken pipe")
        self.written += data
        self.pending += len(data)

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)
        self.written += ws_close_frame(code, reason)

    def on_drain(self, callback: Callable[[], None] | None) -> None:
        self.drain = callback

    def take(self) -> None:
        """The client read everything: the buffer drains and the drain callback runs."""
        self.pending = 0
        if self.drain is not None:
            self.drain()


def make_direct(raw: RawSocket, limit_bytes: int = 1000) -> tuple[SocketOutbound, list[str]]:
    events: list[str] = []
    out = SocketOutbound(
        raw,
        limit_bytes=limit_bytes,
        on_overflow=lambda: events.append("overflow"),
        on_error=lambda exc: events.append(f"error:{exc}"),
    )
    return out, events


def test_direct_frames_are_written_at_once_as_shared_bytes() -> None:
    raw = RawSocket()
    out, _ = make_direct(raw)
    shared = frame("hello")
    out.push(shared)
    other = RawSocket()
    make_direct(other)[0].push(shared)
    assert bytes(raw.written) == ws_text_frame(b"hello") == bytes(other.written)
    assert shared.wire is shared.wire  # built once, the same object for every socket


def test_direct_frames_wait_while_congested_and_follow_in_order() -> None:
    raw = RawSocket(high_water=10)
    out, events = make_direct(raw)
    out.push(frame("a" * 20))  # written: the socket is now congested
    out.push(frame("b"))
    out.push(frame("c"))
    assert bytes(raw.written) == ws_text_frame(b"a" * 20)
    assert out.backlog == raw.pending + 2 * len(ws_text_frame(b"b"))
    raw.take()
    assert bytes(raw.written) == (
        ws_text_frame(b"a" * 20) + ws_text_frame(b"b") + ws_text_frame(b"c")
    )
    assert events == []


def test_falling_behind_past_the_byte_bound_overflows() -> None:
    raw = RawSocket(high_water=10)
    out, events = make_direct(raw, limit_bytes=200)
    for _ in range(20):
        out.push(frame("x" * 30))
    assert "overflow" in events
    assert out.backlog > 200


def test_close_after_overflow_drops_the_backlog_and_writes_the_close_frame() -> None:
    raw = RawSocket(high_water=10)
    out, _ = make_direct(raw, limit_bytes=100)
    out.push(frame("x" * 30))
    for _ in range(10):
        out.push(frame("y" * 30))
    out.close(4008, "SLOW_CONSUMER", drop_queued=True)
    out.push(frame("after"))
    assert raw.closed_with == (4008, "SLOW_CONSUMER")
    assert bytes(raw.written) == ws_text_frame(b"x" * 30) + ws_close_frame(4008, "SLOW_CONSUMER")


def test_a_close_waits_for_the_queued_frames_when_asked_to() -> None:
    raw = RawSocket(high_water=10)
    out, _ = make_direct(raw)
    out.push(frame("x" * 30))
    out.push(frame("last words"))
    out.close(1012, "SERVER_RESTART")
    assert raw.closed_with is None
    raw.take()
    assert raw.closed_with == (1012, "SERVER_RESTART")
    assert bytes(raw.written).endswith(
        ws_text_frame(b"last words") + ws_close_frame(1012, "SERVER_RESTART")
    )


def test_a_failing_direct_write_reports_once_and_stops() -> None:
    raw = RawSocket()
    raw.fail = True
    out, events = make_direct(raw)
    out.push(frame(1))
    out.push(frame(2))
    assert events == ["error:broken pipe"] and out.dead


async def test_flushed_waits_for_the_socket_to_take_everything() -> None:
    raw = RawSocket(high_water=10)
    out, _ = make_direct(raw)
    out.push(frame("x" * 30))
    assert not await out.flushed(0.05)
    asyncio.get_running_loop().call_later(0.05, raw.take)
    assert await out.flushed(1)


# --- long-polling ---------------------------------------------------------------------------


def make_polling(limit_bytes: int = 1000) -> tuple[Any, list[str]]:
    from realtime.connection.polling import PollingOutbound

    overflows: list[str] = []
    outbound = PollingOutbound(limit_bytes=limit_bytes, on_overflow=lambda: overflows.append("x"))
    return outbound, overflows


def test_polling_frames_wait_for_a_get_in_order_at_most_the_limit_each() -> None:
    outbound, _ = make_polling()
    for n in range(5):
        outbound.push(frame(n))
    assert outbound.take(3) == [frame(n).text for n in range(3)]
    assert outbound.take(3) == [frame(n).text for n in (3, 4)]
    assert outbound.take(3) == [] and outbound.backlog == 0


def test_polling_backlog_is_bounded_in_bytes_like_a_socket() -> None:
    outbound, overflows = make_polling(limit_bytes=25)
    outbound.push(Frame("a" * 10))
    outbound.push(Frame("é" * 5))  # 10 bytes in UTF-8
    assert outbound.backlog == 20 and not overflows
    outbound.push(Frame("a" * 10))
    assert overflows == ["x"] and outbound.backlog == 20


def test_polling_close_is_the_close_packet_after_what_waits_or_instead_of_it() -> None:
    outbound, _ = make_polling()
    closed: list[bool] = []
    outbound.on_close = lambda: closed.append(True)
    outbound.push(frame(1))
    outbound.close(4003, "KICKED")
    outbound.push(frame(2))  # sealed: dropped
    assert closed == [True] and outbound.take(16) == [frame(1).text]
    assert outbound.take(16) == ["1"]  # alone: the client handles the event before the close
    dropped, _ = make_polling()
    dropped.push(frame(1))
    dropped.close(4008, "SLOW_CONSUMER", drop_queued=True)
    assert dropped.take(16) == ["1"]


def test_polling_handover_gives_the_waiting_frames_without_the_close() -> None:
    outbound, _ = make_polling()
    first, second = frame(1), frame(2)
    outbound.push(first)
    outbound.push(second)
    assert outbound.handover() == [first, second]
    outbound.push(frame(3))
    assert outbound.take(16) == [] and outbound.sealed


async def test_polling_wait_returns_on_a_push_or_after_the_timeout() -> None:
    outbound, _ = make_polling()
    started = asyncio.get_running_loop().time()
    await outbound.wait(0.05)
    assert asyncio.get_running_loop().time() - started >= 0.04
    waiting = asyncio.ensure_future(outbound.wait(5))
    await asyncio.sleep(0)
    outbound.push(frame(1))
    await asyncio.wait_for(waiting, 1)
    assert await outbound.flushed(0.01) is False
    outbound.take(16)
    assert await outbound.flushed(0.01) is True


def test_after_an_upgrade_the_session_writes_what_polling_held_first_and_keeps_4008() -> None:
    from django.test import override_settings

    from realtime.connection.session import Session
    from realtime.core.constants import RAW_SOCKET
    from realtime.protocol.socketio import SOCKETIO

    raw = RawSocket()
    socket_scope = {"type": "websocket", "extensions": {RAW_SOCKET: raw}}
    with override_settings(AETURNIS_OUTBOUND_BUFFER_BYTES=200):
        session = Session(
            scope={"type": "http", "client": ["127.0.0.1", 1]},
            codec=SOCKETIO,
            send=Socket().send,
            runtime=object(),  # type: ignore[arg-type]
        )
        polling = session.use_polling()
        session.send_text("first")
        session.send_text("second")
        session.use_socket(socket_scope, Socket().send, polling.handover())
        session.send_text("third")
        assert bytes(raw.written) == b"".join(
            ws_text_frame(text.encode()) for text in ("first", "second", "third")
        )
        raw.high_water = 0
        for _ in range(20):  # the client stopped reading: the socket's bound applies now
            session.send_text("x" * 20)
    assert session.close_code == 4008 and raw.closed_with == (4008, "SLOW_CONSUMER")
