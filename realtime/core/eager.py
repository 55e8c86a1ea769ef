"""Coroutines started now and finished later, in the same task: independent steps of one
connection whose Redis commands then leave together.

A step of a connect, a select or a disconnect is typically one script on the loop's pipelined
Redis connection (``realtime.core.resp``). Awaited one after the other, each is its own round
trip: a wakeup of Redis, a read and a write on both sides, a wakeup of the task, ~20-25 µs of
the server's CPU and about as much of Redis's (bench/README.md). ``started(coro)`` runs
``coro`` at once up to its first wait (its command is written then) without a task;
``settle(...)`` then finishes each in the order given. Steps started back to back write their
commands back to back, Redis runs them in that order, and the task waits for their replies
once. Measured in process with three one-script steps: one connection at a time, about half
the CPU of both sides and a third of the wait; 50 connections in flight (a storm), where
commands of different connections already share writes, ~4 µs more per three steps.

Only for steps that do not need each other's results. Every step is finished, also when one
fails: ``settle`` raises the first error once all are done, so none is left half way.
"""

from __future__ import annotations

from asyncio import isfuture
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Started(Generic[T]):
    """``coro`` run up to its first wait; awaiting this (once) finishes it in the awaiting task."""

    __slots__ = ("_coro", "_error", "_pending", "_result", "_running")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self._pending: Any = None
        self._result: Any = None
        self._error: BaseException | None = None
        try:
            self._pending = coro.send(None)
        except StopIteration as done:  # finished without waiting
            self._running = False
            self._result = done.value
        except BaseException as exc:  # raised where it is awaited, as a call's would be
            self._running = False
            self._error = exc
        else:
            self._running = True

    def __await__(self) -> Generator[Any, Any, T]:
        if self._running:
            self._running = False
            result: T = yield from _drive(self._coro, self._pending)
            return result
        return self.result()

    @property
    def waiting(self) -> bool:
        """Whether it stopped at a wait (awaiting it finishes it); if not, ``result()`` has
        its outcome now."""
        return self._running

    def result(self) -> T:
        """The outcome of a coroutine that finished without waiting (its error raised)."""
        if self._running:
            raise RuntimeError("still waiting: await it")
        if self._error is not None:
            raise self._error
        value: T = self._result
        return value

    def close(self) -> None:
        """Give up on it (its task is cancelled): the coroutine is closed where it waits."""
        if self._running:
            self._running = False
            self._coro.close()


def _drive(coro: Coroutine[Any, Any, T], pending: Any) -> Generator[Any, Any, T]:
    """Finish a coroutine that yielded ``pending`` (a future, or None for a bare yield) to its
    first caller: the awaiting task waits on each future exactly as if it had awaited ``coro``.
    A future already done (its reply came with an earlier step's) is not waited for: the
    coroutine goes on at once, without a round of the event loop."""
    while True:
        if isfuture(pending) and pending.done():
            try:
                pending = coro.send(None)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            continue
        try:
            sent = yield pending
        except BaseException as exc:  # cancellation and errors go into the coroutine
            try:
                pending = coro.throw(exc)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]


def started(coro: Coroutine[Any, Any, T]) -> Started[T]:
    return Started(coro)


async def settle(*runs: Started[Any]) -> list[Any]:
    """Finish ``runs`` in order; their results, or the first error once all have finished.
    If the task is cancelled meanwhile, those not finished yet are closed."""
    results: list[Any] = []
    first: Exception | None = None
    for index, run in enumerate(runs):
        try:
            results.append(await run)
        except Exception as exc:  # the others still finish
            first = first or exc
            results.append(None)
        except BaseException:
            for rest in runs[index + 1 :]:
                rest.close()
            raise
    if first is not None:
        raise first
    return results
