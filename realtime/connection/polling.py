"""The outbound side of a session carried by Engine.IO HTTP long-polling.

Nothing is written anywhere: frames wait here, in order and bounded in bytes
(``AETURNIS_OUTBOUND_BUFFER_BYTES``, as for a WebSocket), until the client's next GET takes them
(``take``). A push wakes a GET that is waiting (``wait``). A close seals the buffer and adds
Engine.IO's close packet ``1`` after what it still holds (or instead of it, when the session
dropped its backlog: 4008), in an answer of its own: over polling a close carries no code, so
the reason travels as the event before it. Falling behind past the bound is the session's
``on_overflow`` (close 4008), exactly as on a WebSocket.

On an upgrade to WebSocket the session takes what is still here (``handover``) and writes it
to the new socket first.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from realtime.connection.outbound import dead_end, wait_flushed
from realtime.core import metrics
from realtime.protocol.engineio import EIO_CLOSE
from realtime.protocol.frames import Frame

_CLOSE = Frame(EIO_CLOSE)


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class PollingOutbound:
    """Frames held for the next long-poll GET of one Engine.IO session."""

    __slots__ = (
        "_bytes",
        "_frames",
        "_limit",
        "_on_overflow",
        "_ready",
        "close_code",
        "close_reason",
        "closing",
        "dead",
        "on_close",
        "sealed",
    )

    def __init__(self, *, limit_bytes: int, on_overflow: Callable[[], None]) -> None:
        self._frames: deque[Frame] = deque()
        self._bytes = 0
        self._limit = limit_bytes
        self._on_overflow = on_overflow
        self._ready = asyncio.Event()
        self.sealed = False  # nothing more is accepted (closing, or handed over)
        self.closing = False  # the close packet is queued
        self.close_code: int | None = None
        self.close_reason = ""
        self.dead = False
        # Told when the close packet is queued (the transport ends the session once a GET took
        # it, or after a grace period without one).
        self.on_close: Callable[[], None] | None = None

    @property
    def backlog(self) -> int:
        """Bytes waiting for a GET."""
        return self._bytes

    def push(self, frame: Frame) -> None:
        if self.dead or self.sealed:
            return
        size = _size(frame.text)
        if self._bytes + size > self._limit:
            metrics.OUTBOUND_OVERFLOWS.inc()
            self._on_overflow()
            return
        self._frames.append(frame)
        self._bytes += size
        self._ready.set()

    def close(self, code: int, reason: str, *, drop_queued: bool = False) -> None:
        """Queue the close packet after what is queued (or instead of it); accept nothing more."""
        if self.dead or self.sealed:
            return
        self.sealed = True
        self.closing = True
        self.close_code, self.close_reason = code, reason
        if drop_queued:
            self._frames.clear()
            self._bytes = 0
        self._frames.append(_CLOSE)
        self._ready.set()
        if self.on_close is not None:
            self.on_close()

    def take(self, limit: int) -> list[str]:
        """Up to ``limit`` packets, oldest first, removed from the buffer.

        The close packet goes out alone, in the answer after the packets before it:
        socket.io-client hands received events to the application a tick later, and an event
        that arrives together with the close would reach a disconnected socket (it holds such
        events back until it connects again, so ``system:shutdown`` would come too late).
        """
        taken: list[str] = []
        frames = self._frames
        while frames and len(taken) < limit:
            frame = frames[0]
            if frame is _CLOSE and taken:
                break
            frames.popleft()
            if frame is not _CLOSE:
                self._bytes -= _size(frame.text)
            taken.append(frame.text)
        if not frames and not self.dead:
            self._ready.clear()
        return taken

    def nudge(self) -> None:
        """Wake a waiting GET without data (it answers a noop: an upgrade is under way)."""
        self._ready.set()

    async def wait(self, timeout_s: float) -> None:
        """Until a push, a close, a nudge or ``kill``; at most ``timeout_s`` seconds."""
        if self._frames or self.dead:
            return
        self._ready.clear()
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except TimeoutError:
            return

    def handover(self) -> list[Frame]:
        """Everything still waiting, for another outbound (an upgrade); this one is sealed and
        will hold nothing more. The close packet is Engine.IO's and is not handed over."""
        frames = [frame for frame in self._frames if frame is not _CLOSE]
        self._frames.clear()
        self._bytes = 0
        self.sealed = True
        self._ready.set()
        return frames

    async def flushed(self, limit_s: float) -> bool:
        """Wait until the client took everything, at most ``limit_s`` seconds (shutdown)."""
        return await wait_flushed(lambda: not self.dead and bool(self._frames), limit_s)

    def kill(self) -> None:
        """The session is over: drop what waits, wake a waiting GET (it answers the close)."""
        self.dead = True
        self._frames.clear()
        self._bytes = 0
        self._on_overflow = dead_end  # a bound method of the session: no cycle once over
        self._ready.set()
