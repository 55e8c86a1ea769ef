"""The lean per-connection plumbing between an ASGI server and our consumers.

A connection is idle almost all of its life, and what it holds while idle is what a process
pays per player. ``asyncio.Queue`` and ``asyncio.Event`` each allocate a ``deque`` at
construction (760 bytes: a deque's first block of 64 slots), and a queue holds three plus an
event of its own: ~3.8 KB per connection before a single message. ``Inbox`` and ``Flag`` do the
same jobs for one reader with nothing allocated until something waits.

This module is imported by uvicorn before Django is set up: standard library only.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from realtime.core.constants import RX_KEY


class Inbox:
    """What the server received for the application, read by one reader (``get``).

    Messages of type ``websocket.receive`` are stamped with ``arrived``: the time their bytes
    reached the process (PROTOCOL.md §5.2 judges movement on arrival), which the server's
    protocol sets as bytes come in; the time of the put until it first does. A value, not a
    callback into the protocol: the protocol holds its inbox, and a callback back to it would
    be a reference cycle that keeps every closed connection for the cyclic collector.
    """

    __slots__ = ("_items", "_waiter", "arrived")

    def __init__(self) -> None:
        self._items: list[dict[str, Any]] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.arrived = 0.0

    def put_nowait(self, item: dict[str, Any]) -> None:
        if item.get("type") == "websocket.receive":
            item[RX_KEY] = self.arrived or time.time()
        items = self._items
        if items is None:
            self._items = [item]
        else:
            items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    async def get(self) -> dict[str, Any]:
        # Servers pause reading while a message waits, so the list holds one or two messages:
        # a list's pop(0) is the right structure here, and it is dropped once empty.
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        items = self._items
        item = items.pop(0)
        if not items:
            self._items = None
        return item


class Flag:
    """``asyncio.Event``'s ``is_set``/``set``/``clear``/``wait``, allocating only for waiters."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, value: bool = True) -> None:
        self._set = value
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True
