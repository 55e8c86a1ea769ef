"""Graceful shutdown: on SIGTERM every client gets ``system:shutdown`` then close 1012.

daphne's own SIGTERM handling cancels every application without a close frame (clients see
1006) and never runs ``disconnect()``; uvicorn closes with 1012 but sends no event. So the
first runtime of a process puts its handler in front of the server's: it tells every local
connection, writes positions, runs the shutdown steps features added, waits briefly for the
frames to leave, then hands the signal to the server's own handler.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings

from realtime.core.errors import ServiceUnavailable
from realtime.runtime.runtime import Runtime

logger = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 3.0
_installed = False
_shutting_down = False


def install_shutdown_handler(runtime: Runtime) -> None:
    """Install once per process, from the main thread (where the server's loop runs)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    if os.environ.get("AETURNIS_NO_SIGNAL_HANDLERS"):
        return
    _installed = True
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def handler(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
            global _shutting_down
            if _shutting_down:  # a second signal: stop now
                _chain(previous, sig, frame)
                return
            _shutting_down = True
            runtime.loop.call_soon_threadsafe(
                lambda: runtime.loop.create_task(graceful_shutdown(runtime, previous, sig))
            )

        signal.signal(signum, handler)


async def close_all(runtime: Runtime) -> None:
    """Send every local client ``system:shutdown`` and close 1012, then wait for the frames."""
    runtime.shutting_down = True  # connections that arrive from now on are closed at once
    sessions = list(runtime.hub.members.values())
    logger.info("shutting down: closing %d connections", len(sessions))
    for session in sessions:
        session.server_shutdown(settings.AETURNIS_SHUTDOWN_RECONNECT_AFTER_MS)
    try:
        await asyncio.wait_for(runtime.before_exit(), FLUSH_TIMEOUT_S)
    except ServiceUnavailable as exc:  # the outage itself was reported when it began
        logger.warning("state not written at shutdown: %s unavailable", exc.dependency)
    except Exception:
        logger.exception("writing state at shutdown failed")
    for step in runtime.shutdown_steps:
        try:
            await asyncio.wait_for(step(), FLUSH_TIMEOUT_S)
        except Exception:
            logger.exception("shutdown step failed")
    await asyncio.gather(*(s.flushed(FLUSH_TIMEOUT_S) for s in sessions))
    # Let the server write the close frames out before it starts tearing sockets down.
    await asyncio.sleep(0.3)


async def graceful_shutdown(runtime: Runtime, previous: Any, signum: int) -> None:
    try:
        await close_all(runtime)
    finally:
        _chain(previous, signum, None)


def _chain(previous: Any, signum: int, frame: FrameType | None) -> None:
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
