"""The one place where the handlers' per-process parts are added to a runtime.

Called once per runtime, before it starts (``realtime.transport.app``): chat's group-commit
writer, typing state and profanity filter; combat's turn-deadline ticker.
"""

from __future__ import annotations

from realtime.handlers import chat, combat
from realtime.runtime.runtime import Runtime


def install(runtime: Runtime) -> None:
    chat.install(runtime)
    combat.install(runtime)
