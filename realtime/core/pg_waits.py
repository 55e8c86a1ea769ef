"""The hot path's psycopg connections, waiting for PostgreSQL's answers without per-wait setup.

psycopg's async connection waits for every answer by registering its socket with the event
loop and arming a timer (its interrupt interval), and undoes both once the answer is there:
two ``epoll_ctl`` calls and a timer per statement, plus the closures and futures around them.
``LoopConnection`` keeps its socket registered from one statement to the next and arms no
timer (``realtime.core.reads`` shuts the socket of a statement past its deadline, which wakes
the wait): ~75 → ~55 µs of CPU per read with 50 in flight on this machine (bench/README.md).

The registration never outlives its use: a connection PostgreSQL closes while idle leaves the
loop, and so does one whose ``release()`` is called, which must come before it is closed. A
wait for writing (a statement larger than the socket's buffer) and a wait with psycopg's own
timeout go psycopg's way; a failed or interrupted wait unregisters, and closes the connection
if a statement is still running on it.
Only ``realtime.core.reads`` uses it, and only on PostgreSQL (it imports psycopg).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Generator
from typing import Any, TypeVar

import psycopg
from psycopg import waiting
from psycopg.waiting import READY_R, WAIT_W

RV = TypeVar("RV")


class LoopConnection(psycopg.AsyncConnection[Any]):
    """A psycopg async connection whose socket stays registered with the loop between waits."""

    # The loop the socket is registered with, held weakly: the reads keep their connections per
    # loop in a weak-keyed map, where a value holding its key would keep both forever.
    _loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
    _watched = -1  # the socket registered with _loop, -1 when none
    _waiter: asyncio.Future[int] | None = None

    async def wait(
        self,
        gen: Generator[Any, Any, RV],
        interval: float | None = 0.1,
        timeout: float | None = None,  # noqa: ASYNC109 (psycopg's signature)
    ) -> RV:
        if timeout is not None:
            self.release()
            return await super().wait(gen, interval or 0.1, timeout)
        loop = asyncio.get_running_loop()
        fd = self.pgconn.socket
        try:
            state = next(gen)
            while True:
                if state & WAIT_W:
                    ready = waiting._ready(fd, state)  # as psycopg: writable nearly always
                    if not ready:
                        self.release()
                        return await waiting.wait_async(_resumed(state, gen), fd, interval=0.1)
                    state = gen.send(ready)
                    continue
                if self._watched != fd or self._loop is None or self._loop() is not loop:
                    self.release()
                    loop.add_reader(fd, self._readable)
                    self._loop, self._watched = weakref.ref(loop), fd
                waiter = self._waiter = loop.create_future()
                try:
                    ready = await waiter
                finally:
                    self._waiter = None
                state = gen.send(ready)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        except BaseException:
            # Failed, or interrupted half way (the loop is closing): a statement still running
            # would leave the connection busy, so it is closed (the reads make a new one).
            self.release()
            if self.pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE:
                self.pgconn.finish()
            raise

    def _readable(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(READY_R)
            return
        # Nobody waits. Mostly a stale event: the answer's task, woken by the same readiness
        # one loop iteration earlier, has read it since. Otherwise PostgreSQL spoke unasked (a
        # notice, or closing the connection): libpq takes it in, so the socket is not readable
        # again and again; a connection that is gone leaves the loop.
        try:
            self.pgconn.consume_input()
        except psycopg.OperationalError:
            self.release()

    def release(self) -> None:
        """Unregister the socket from the loop (before closing the connection)."""
        loop = None if self._loop is None else self._loop()
        fd = self._watched
        self._loop, self._watched = None, -1
        if loop is not None and fd >= 0 and not loop.is_closed():
            loop.remove_reader(fd)


def _resumed(state: Any, gen: Generator[Any, Any, RV]) -> Generator[Any, Any, RV]:
    """``gen``, which has just yielded ``state``, as a generator that yields it again first."""
    ready = yield state
    while True:
        try:
            state = gen.send(ready)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        ready = yield state
