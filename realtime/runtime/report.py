"""This process's counts (connections, users, rooms), reported to Redis for the stats API.

Each process writes its counts every few seconds with an expiry of three intervals, so a
process that died drops out on its own; ``realtime.ops.stats`` adds the live reports up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import orjson
from django.conf import settings

from realtime.core.health import REDIS
from realtime.core.loops import cancelling
from realtime.core.redis_client import REDIS_ERRORS, async_redis, key, redis_enabled
from realtime.fanout.hub import Hub

logger = logging.getLogger(__name__)


def report_interval_s() -> float:
    return max(0.5, min(5.0, float(settings.AETURNIS_PRESENCE_REFRESH_S)))


def process_key(process: str) -> str:
    return key("process", process)


def process_counts(*, hub: Hub, process: str, started_at_ms: int) -> dict[str, Any]:
    """This process's connections, users and rooms with their local member counts."""
    members = list(hub.members.values())
    users = {m.user_id for m in members} - {0}
    return {
        "process": process,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "startedAt": started_at_ms,
        "connections": len(members),
        "userIds": sorted(users),
        "rooms": hub.room_counts(),
        "reportedAt": int(time.time() * 1000),
    }


# After a connect or a disconnect, wait this long for others before reporting (a burst of
# connects is one write), so the stats API is never more than about this much behind.
CHANGE_DEBOUNCE_S = 0.5


async def report_loop(
    process: str, counts: Callable[[], dict[str, Any]], changed: asyncio.Event
) -> None:
    """Write ``counts()`` to Redis every interval and soon after ``changed`` is set (a
    connection opened or closed), so the stats API follows within a second (nothing to do
    without Redis: the stats API reads this process directly)."""
    if not redis_enabled():
        return
    while True:
        changed.clear()
        try:
            interval = report_interval_s()
            await async_redis().set(
                process_key(process), orjson.dumps(counts()), px=int(interval * 3000)
            )
        except REDIS_ERRORS as exc:
            if cancelling():
                raise asyncio.CancelledError from None
            REDIS.failed("stats", exc)
        except Exception:
            logger.exception("reporting process counts failed")
        if cancelling():
            raise asyncio.CancelledError
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), report_interval_s())
            await asyncio.sleep(CHANGE_DEBOUNCE_S)
