"""Deliver frames to one socket without ever making the caller wait on it, within a byte bound.

A fan-out loop must not await each recipient: one client that stops reading would stall every
room of the process (PITFALLS.md). Two ways to a socket:

* ``SocketOutbound`` — the server lets us write frames to the socket directly (our uvicorn
  protocol and the daphne shim put a ``RawSocket`` in the scope): the same pre-built frame
  bytes go to every recipient with one ``write`` each, no coroutine, no ASGI message. While the
  transport is congested, frames wait here, counted in bytes.
* ``AsgiOutbound`` — any other ASGI server (and Channels' test communicator): the ASGI
  ``send()`` is started at once and finished by a task only when it would block.

Either way the bytes a connection may hold back are bounded (``AETURNIS_OUTBOUND_BUFFER_BYTES``,
plus a message count on the ASGI path): past it the connection's backlog is dropped and it is
closed with 4008 (the caller's ``on_overflow``), so a slow client costs bounded memory and no
other client's latency. A send that fails for any other reason kills the outbound and tells
the caller once (``on_error``), which closes the socket instead of leaving it half alive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from realtime.core import metrics
from realtime.core.eager import started
from realtime.protocol.frames import Frame

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]

# How often ``flushed`` looks at a socket's buffers while waiting for them to drain (shutdown).
FLUSH_POLL_S = 0.02


async def wait_flushed(pending: Callable[[], bool], limit_s: float) -> bool:
    """Wait while ``pending()``, at most ``limit_s`` seconds; whether it ended (shutdown)."""
    deadline = time.monotonic() + limit_s
    while pending():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(FLUSH_POLL_S)
    return True


class RawSocket(Protocol):
    """A WebSocket the server lets the application write frames to directly.

    Implemented by ``realtime.transport.uvicorn`` and ``realtime.transport.daphne`` and found in
    ``scope["extensions"][RAW_SOCKET]``. Every method is synchronous and never blocks.
    """

    def writable(self) -> bool:
        """Whether a frame written now goes out behind no congestion (else: queue it and wait
        for the drain callback)."""
        ...

    def buffered(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        ...

    def write(self, data: bytes) -> None:
        """Write whole frames (ordered after everything written before)."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Send a close frame after what was written, and make sure the socket goes away even
        if the peer never reads it (abort after a grace period)."""
        ...

    def on_drain(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` whenever the socket's buffer drained after being congested."""
        ...


class Outbound(Protocol):
    """What a session needs of its way to the socket."""

    @property
    def backlog(self) -> int: ...

    def push(self, frame: Frame) -> None: ...

    def close(self, code: int, reason: str, *, drop_queued: bool = False) -> None: ...

    async def flushed(self, limit_s: float) -> bool: ...

    def kill(self) -> None: ...


def dead_end(*_: object) -> None:
    """What a dead outbound calls instead of its session's callbacks.

    Those callbacks are the session's bound methods, and the session holds its outbound: a
    reference cycle. Dropped when the outbound dies, a closed connection is freed as soon as
    its last reference goes, instead of waiting for the cyclic collector (bench/README.md,
    "The garbage collector").
    """


async def sent_nowhere(message: dict[str, Any]) -> None:
    """The ASGI send of a dead outbound or a finished session: the socket is gone (see
    ``dead_end``)."""


class SocketOutbound:
    """Frames written straight to a ``RawSocket``; queued here (in bytes) only while it is
    congested."""

    __slots__ = (
        "_closing",
        "_limit",
        "_on_error",
        "_on_overflow",
        "_queue",
        "_queued",
        "_raw",
        "dead",
        "sealed",
    )

    def __init__(
        self,
        raw: RawSocket,
        *,
        limit_bytes: int,
        on_overflow: Callable[[], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._raw = raw
        self._limit = limit_bytes
        self._on_overflow = on_overflow
        self._on_error = on_error
        # Only while the socket is congested; None otherwise (an idle connection holds no deque).
        self._queue: deque[bytes] | None = None
        self._queued = 0
        self._closing: tuple[int, str] | None = None
        self.dead = False
        self.sealed = False
        raw.on_drain(self._drained)

    @property
    def backlog(self) -> int:
        """Bytes held back: queued here and buffered by the transport."""
        return self._queued + self._raw.buffered()

    def push(self, frame: Frame) -> None:
        if self.dead or self.sealed:
            return
        data = frame.wire
        if self._queue or not self._raw.writable():
            if self._queue is None:
                self._queue = deque()
            self._queue.append(data)
            self._queued += len(data)
            if self._queued + self._raw.buffered() > self._limit:
                metrics.OUTBOUND_OVERFLOWS.inc()
                self._on_overflow()
            return
        try:
            self._raw.write(data)
        except Exception as exc:
            self._fail(exc)

    def close(self, code: int, reason: str, *, drop_queued: bool = False) -> None:
        """Close after what is queued (or instead of it); accept nothing more."""
        if self.dead:
            return
        self.sealed = True
        if drop_queued:
            self._queue = None
            self._queued = 0
        if self._queue:
            self._closing = (code, reason)
            return
        self._close_now(code, reason)

    def _close_now(self, code: int, reason: str) -> None:
        try:
            self._raw.close(code, reason)
        except Exception as exc:
            self._fail(exc)

    def _drained(self) -> None:
        """The transport caught up: hand it what waited here, as long as it takes it."""
        if self.dead:
            return
        batch: list[bytes] = []
        while self._queue and self._raw.writable():
            data = self._queue.popleft()
            self._queued -= len(data)
            batch.append(data)
            if len(batch) >= 64:
                self._write_batch(batch)
                batch = []
        self._write_batch(batch)
        if not self._queue:
            self._queue = None
        if self._queue is None and self._closing is not None and not self.dead:
            code, reason = self._closing
            self._closing = None
            self._close_now(code, reason)

    def _write_batch(self, batch: list[bytes]) -> None:
        if not batch or self.dead:
            return
        try:
            self._raw.write(b"".join(batch))
        except Exception as exc:
            self._fail(exc)

    async def flushed(self, limit_s: float) -> bool:
        """Wait until nothing is held back, at most ``limit_s`` seconds."""
        return await wait_flushed(lambda: not self.dead and bool(self.backlog), limit_s)

    def kill(self) -> None:
        """Stop delivering (the socket is gone); what was queued is dropped, and so are the
        callbacks into the session (see ``dead_end``)."""
        self.dead = True
        self._queue = None
        self._queued = 0
        self._raw.on_drain(None)
        self._on_overflow = self._on_error = dead_end

    def _fail(self, exc: BaseException) -> None:
        on_error = self._on_error
        self.kill()
        on_error(exc)


class AsgiOutbound:
    """Ordered, non-blocking delivery of ASGI messages to one socket (any ASGI server).

    ``push`` starts the ASGI ``send()`` at once; when the server completes it without
    suspending nothing else happens. Only a send that would block is finished by a task, and
    frames that arrive meanwhile wait in a queue bounded by count and by bytes.
    """

    __slots__ = (
        "_bytes",
        "_limit",
        "_limit_bytes",
        "_on_error",
        "_on_overflow",
        "_queue",
        "_send",
        "_task",
        "dead",
        "sealed",
    )

    def __init__(
        self,
        send: Send,
        *,
        limit: int,
        limit_bytes: int,
        on_overflow: Callable[[], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._send = send
        self._queue: deque[dict[str, Any]] = deque()
        self._limit = limit
        self._limit_bytes = limit_bytes
        self._bytes = 0
        self._task: asyncio.Task[None] | None = None
        self._on_overflow = on_overflow
        self._on_error = on_error
        self.dead = False
        self.sealed = False

    @property
    def backlog(self) -> int:
        """Messages waiting behind a send in progress."""
        return len(self._queue)

    def push(self, frame: Frame) -> None:
        """Hand ``frame`` to the socket now, or queue it behind a send still in progress."""
        self._push({"type": "websocket.send", "text": frame.text})

    def _push(self, message: dict[str, Any]) -> None:
        if self.dead or self.sealed:
            return
        if self._task is not None:
            size = len(message.get("text") or "")
            if len(self._queue) >= self._limit or self._bytes + size > self._limit_bytes:
                metrics.OUTBOUND_OVERFLOWS.inc()
                self._on_overflow()
                return
            self._queue.append(message)
            self._bytes += size
            return
        coro = self._send(message)
        if not isinstance(coro, Coroutine):  # an awaitable that is not a coroutine: use a task
            self._task = asyncio.ensure_future(self._drain(coro))
            return
        run = started(coro)
        if not run.waiting:
            try:
                run.result()
            except Exception as exc:  # the server refused the message: the socket is gone
                self._fail(exc)
            return
        self._task = asyncio.get_running_loop().create_task(self._drain(run))

    def close(self, code: int, reason: str, *, drop_queued: bool = False) -> None:
        """Close after what is queued (or instead of it) and accept nothing more."""
        if drop_queued or (self._task is not None and len(self._queue) >= self._limit):
            self._queue.clear()
            self._bytes = 0
        self._push({"type": "websocket.close", "code": int(code), "reason": reason})
        self.sealed = True

    async def flushed(self, limit_s: float) -> bool:
        """Wait until nothing is pending, at most ``limit_s`` seconds."""
        task = self._task
        if task is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(task), limit_s)
        except (TimeoutError, asyncio.CancelledError):
            return False
        return self._task is None

    def kill(self) -> None:
        """Stop delivering (the socket is closed); pending work is abandoned, and the
        callbacks into the session are dropped (see ``dead_end``)."""
        self.dead = True
        self._queue.clear()
        self._bytes = 0
        self._on_overflow = self._on_error = dead_end
        self._send = sent_nowhere  # the consumer's send: the consumer holds the session
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _drain(self, first: Awaitable[None]) -> None:
        """Finish ``first`` (a send already under way), then everything queued behind it."""
        try:
            await first
            while self._queue and not self.dead:
                message = self._queue.popleft()
                self._bytes -= len(message.get("text") or "")
                await self._send(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)
        finally:
            self._task = None

    def _fail(self, exc: BaseException) -> None:
        on_error = self._on_error
        self.dead = True
        self._queue.clear()
        self._bytes = 0
        self._on_overflow = self._on_error = dead_end
        on_error(exc)
