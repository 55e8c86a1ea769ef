"""The one way async realtime code calls a (sync) domain service or selector."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

from channels.db import database_sync_to_async

P = ParamSpec("P")
T = TypeVar("T")


async def db(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` on the ORM thread (closing stale connections around it) and return its result."""
    return cast(T, await database_sync_to_async(fn)(*args, **kwargs))
