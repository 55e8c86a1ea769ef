"""The runtime of this process, found at the edges (transports, the operator API).

Only ``realtime.transport``, ``realtime.ops`` and ``realtime.runtime`` may import this module
(an import-linter contract): everything else receives the runtime, or the part of it it needs,
as an argument.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from realtime.runtime.runtime import Runtime
from realtime.runtime.shutdown import install_shutdown_handler

Installer = Callable[[Runtime], None]

_runtime: Runtime | None = None
_lock: asyncio.Lock | None = None
# The loop ``_lock`` was made for. (An asyncio.Lock binds its loop only once a caller has had to
# wait, so the lock itself cannot tell: asking it made every concurrent first caller build a
# runtime of its own.)
_lock_loop: asyncio.AbstractEventLoop | None = None


async def get_runtime(install: Installer) -> Runtime:
    """The runtime of the running loop, built, given its features by ``install`` and started
    on first use (once, however many ask at once). Tests run each on its own loop; a runtime
    whose loop is gone is replaced."""
    global _runtime, _lock, _lock_loop
    loop = asyncio.get_running_loop()
    if _runtime is not None and _runtime.loop is loop:
        return _runtime
    if _lock is None or _lock_loop is not loop:
        _lock, _lock_loop = asyncio.Lock(), loop
    async with _lock:
        if _runtime is None or _runtime.loop is not loop:
            runtime = Runtime(loop)
            install(runtime)
            await runtime.start()
            _runtime = runtime
            install_shutdown_handler(runtime)
    return _runtime


def current_runtime() -> Runtime | None:
    """The runtime if one is running (for sync code in threads); None in other processes."""
    runtime = _runtime
    if runtime is None or runtime.loop.is_closed():
        return None
    return runtime


async def stop_runtime() -> None:
    """Stop the running loop's runtime, if any (tests; the server process just exits)."""
    global _runtime
    runtime = _runtime
    if runtime is not None and runtime.loop is asyncio.get_running_loop():
        _runtime = None
        await runtime.stop()
