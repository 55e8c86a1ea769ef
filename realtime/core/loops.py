"""Background loops of a process: one helper so that no loop dies of one bad round."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


async def repeat(
    interval: Callable[[], float], step: Callable[[], Awaitable[object]], what: str
) -> None:
    """Run ``step`` every ``interval()`` seconds until cancelled; a failing step is logged and
    retried next round (a background loop must never die of one bad round)."""
    while True:
        await asyncio.sleep(interval())
        try:
            await step()
        except Exception:
            logger.exception("%s failed; retrying next round", what)
