"""This process's runtime, as the transports get it: built with the handlers' features."""

from __future__ import annotations

from realtime.handlers import features
from realtime.runtime import lookup
from realtime.runtime.runtime import Runtime
from realtime.transport import polling


def install(runtime: Runtime) -> None:
    """The per-process parts of the handlers and of the transports (Engine.IO's polling
    sessions), added once before the runtime starts."""
    features.install(runtime)
    polling.install(runtime)


async def app_runtime() -> Runtime:
    """The running loop's runtime (built, given its features and started once)."""
    return await lookup.get_runtime(install)
