"""Deliver frames to one socket without ever making the caller wait on it.

A fan-out loop must not await each recipient's ``send()``: one client that stops reading
would stall every room of the process (see PITFALLS.md). ``Outbound.push`` starts the ASGI
send at once; when the server completes it without suspending (daphne always does, uvicorn
does while the socket's buffer has room) nothing else happens. Only a send that would block is
finished by a per-connection task, and frames that arrive meanwhile wait in a bounded queue.
When that queue overflows, the connection is closed with 4008 instead of growing memory.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from realtime.core import metrics

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]


@types.coroutine
def _finish(coro: Coroutine[Any, Any, None], pending: Any) -> Generator[Any, Any, None]:
    """Drive a coroutine that was already started by hand until it completes.

    ``pending`` is what its first step yielded (a future, or None for a bare yield); yielding
    it to the running task lets the task wait on it exactly as if it had awaited ``coro``.
    """
    while True:
        try:
            sent = yield pending
        except BaseException as exc:  # propagate cancellation and errors into the coroutine
            try:
                pending = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                pending = coro.send(sent)
            except StopIteration:
                return


class Outbound:
    """Ordered, non-blocking delivery of ASGI messages to one socket."""

    __slots__ = (
        "_limit",
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
        on_overflow: Callable[[], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._send = send
        self._queue: deque[dict[str, Any]] = deque()
        self._limit = limit
        self._task: asyncio.Task[None] | None = None
        self._on_overflow = on_overflow
        self._on_error = on_error
        self.dead = False
        self.sealed = False

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def push(self, message: dict[str, Any]) -> None:
        """Hand ``message`` to the socket now, or queue it behind a send still in progress."""
        if self.dead or self.sealed:
            return
        if self._task is not None:
            if len(self._queue) >= self._limit:
                metrics.OUTBOUND_OVERFLOWS.inc()
                self._on_overflow()
                return
            self._queue.append(message)
            return
        coro = self._send(message)
        if not isinstance(coro, Coroutine):  # an awaitable that is not a coroutine: use a task
            self._task = asyncio.ensure_future(self._drain(coro))
            return
        try:
            pending = coro.send(None)
        except StopIteration:
            return
        except Exception as exc:  # the server refused the message: the socket is gone
            self._fail(exc)
            return
        self._task = asyncio.get_running_loop().create_task(self._drain(_finish(coro, pending)))

    def push_last(self, message: dict[str, Any], *, drop_queued: bool = False) -> None:
        """Send ``message`` after what is queued (or instead of it) and accept nothing more."""
        if drop_queued:
            self._queue.clear()
        if self._task is not None and len(self._queue) >= self._limit:
            self._queue.clear()
        self.push(message)
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
        """Stop delivering (the socket is closed); pending work is abandoned."""
        self.dead = True
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _drain(self, first: Awaitable[None]) -> None:
        """Finish ``first`` (a send already under way), then everything queued behind it."""
        try:
            await first
            while self._queue and not self.dead:
                await self._send(self._queue.popleft())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)
        finally:
            self._task = None

    def _fail(self, exc: BaseException) -> None:
        logger.debug("send failed, dropping connection output: %r", exc)
        self.dead = True
        self._queue.clear()
        self._on_error(exc)
