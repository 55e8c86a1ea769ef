"""One object per event loop: clients, connections and guards are bound to the loop they were
made on (their futures and transports belong to it), and tests and servers run several."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class PerLoop(Generic[P, T]):
    """The running loop's ``T``, made by ``make`` on first use there (with ``get``'s arguments)
    and forgotten with the loop."""

    __slots__ = ("_by_loop", "_make")

    def __init__(self, make: Callable[P, T]) -> None:
        self._make = make
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        value = self._by_loop.get(loop)
        if value is None:
            value = self._by_loop[loop] = self._make(*args, **kwargs)
        return value

    def pop(self) -> T | None:
        """Forget the running loop's ``T`` (to close it); None when it has none."""
        return self._by_loop.pop(asyncio.get_running_loop(), None)
