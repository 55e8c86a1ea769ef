"""Background loops of a process: one helper so that no loop dies of one bad round."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from realtime.core.errors import ServiceUnavailable

logger = logging.getLogger(__name__)


def cancelling() -> bool:
    """Whether the current task has been asked to stop.

    A cancellation does not always come out of a Redis call as ``CancelledError``: redis-py
    reads under a timeout and handles errors of its own around them, and a cancel can come out
    as ``TimeoutError`` or not at all (seen with Python 3.11). Background loops check this
    before each round, so that stopping them always stops them.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def repeat(
    interval: Callable[[], float], step: Callable[[], Awaitable[object]], what: str
) -> None:
    """Run ``step`` every ``interval()`` seconds until cancelled; a failing step is logged and
    retried next round (a background loop must never die of one bad round). A step refused
    because a dependency is down is not logged again: the outage already was, once."""
    while True:
        if cancelling():
            raise asyncio.CancelledError
        await asyncio.sleep(interval())
        try:
            await step()
        except ServiceUnavailable:
            if cancelling():
                raise asyncio.CancelledError from None
            continue
        except Exception:
            if cancelling():
                raise asyncio.CancelledError from None
            logger.exception("%s failed; retrying next round", what)
