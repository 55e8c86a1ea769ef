"""This process's runtime, as the transports get it: built with the handlers' features."""

from __future__ import annotations

from realtime.handlers.features import install
from realtime.runtime import lookup
from realtime.runtime.runtime import Runtime


async def app_runtime() -> Runtime:
    """The running loop's runtime (built, given the handlers' features and started once)."""
    return await lookup.get_runtime(install)
